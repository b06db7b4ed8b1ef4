"""The Hub test server against the real `huggingface_hub` and `transformers` clients, each in its own process."""

import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.hub_server import HubTestServer, client_environment, git_blob_sha
from tests.processes import process_timeout


@pytest.fixture(scope="module")
def hub():
    with HubTestServer() as server:
        yield server


def run_client(script: str, environment: dict[str, str], *arguments: str) -> dict:
    """Runs `script` in a fresh interpreter (the client reads `HF_ENDPOINT` at import) and returns its JSON output."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=process_timeout(starts=1, work_s=10),
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


UPLOAD_SCRIPT = """
    import json, sys
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi()
    api.create_repo("org/files")
    api.create_repo("org/files", exist_ok=True)
    first = api.upload_folder(repo_id="org/files", folder_path=sys.argv[1], commit_message="add files")
    second = api.create_commit(
        "org/files",
        [CommitOperationAdd("notes.txt", b"second version\\n"), CommitOperationDelete("weights/blob.bin")],
        commit_message="edit notes, drop the blob",
    )
    print(json.dumps({"first": first.oid, "second": second.oid, "user": api.whoami()["name"]}))
"""

DOWNLOAD_SCRIPT = """
    import json, sys
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    first, paths = sys.argv[1], json.loads(sys.argv[2])
    result = {
        "main": {path: hf_hub_download("org/files", path) for path in paths["main"]},
        "first": {path: hf_hub_download("org/files", path, revision=first) for path in paths["first"]},
        "snapshot_main": snapshot_download("org/files"),
        "snapshot_first": snapshot_download("org/files", revision=first),
    }
    for name, call, error in [
        ("missing_file", lambda: hf_hub_download("org/files", "weights/blob.bin"), EntryNotFoundError),
        ("missing_repo", lambda: hf_hub_download("org/absent", "notes.txt"), RepositoryNotFoundError),
        ("missing_revision", lambda: hf_hub_download("org/files", "notes.txt", revision="v9"), RevisionNotFoundError),
    ]:
        try:
            call()
            result[name] = None
        except error as raised:
            result[name] = type(raised).__name__
    print(json.dumps(result))
"""


def read_tree(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_client_round_trip_gives_exact_bytes_per_revision(hub, tmp_path):
    folder = tmp_path / "upload"
    (folder / "weights").mkdir(parents=True)
    first_files = {
        "notes.txt": b"first version\n",
        "config.json": b'{"hidden_size": 8}\n',
        "weights/blob.bin": np.random.default_rng(0).bytes(70_000),
    }
    for path, content in first_files.items():
        (folder / path).write_bytes(content)

    uploaded = run_client(UPLOAD_SCRIPT, client_environment(hub, tmp_path / "uploader"), str(folder))

    gitattributes = hub.files("org/files", revision=hub.commits("org/files")[0].sha)[".gitattributes"]
    at_first = {".gitattributes": gitattributes, **first_files}
    at_main = {
        ".gitattributes": gitattributes,
        "config.json": first_files["config.json"],
        "notes.txt": b"second version\n",
    }
    assert uploaded["user"] == "test-user"
    assert hub.files("org/files") == at_main
    assert hub.files("org/files", revision=uploaded["first"]) == at_first
    assert [commit.sha for commit in hub.commits("org/files")][1:] == [uploaded["first"], uploaded["second"]]
    assert [commit.title for commit in hub.commits("org/files")] == [
        "initial commit",
        "add files",
        "edit notes, drop the blob",
    ]

    paths = {"main": sorted(at_main), "first": sorted(at_first)}
    downloaded = run_client(
        DOWNLOAD_SCRIPT, client_environment(hub, tmp_path / "downloader"), uploaded["first"], json.dumps(paths)
    )

    assert {path: Path(file).read_bytes() for path, file in downloaded["main"].items()} == at_main
    assert {path: Path(file).read_bytes() for path, file in downloaded["first"].items()} == at_first
    assert read_tree(Path(downloaded["snapshot_main"])) == at_main
    assert read_tree(Path(downloaded["snapshot_first"])) == at_first
    assert downloaded["missing_file"] == "RemoteEntryNotFoundError"
    assert downloaded["missing_repo"] == "RepositoryNotFoundError"
    assert downloaded["missing_revision"] == "RevisionNotFoundError"


PUSH_SCRIPT = """
    import json, sys
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    model = BertModel(config)
    commit = model.push_to_hub("org/tiny")
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, sys.argv[1])
    print(json.dumps({"commit": commit.oid}))
"""

PULL_SCRIPT = """
    import json, sys
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    model = AutoModel.from_pretrained("org/tiny")
    pushed, pulled = load_file(sys.argv[1]), model.state_dict()
    same = sorted(pushed) == sorted(pulled) and all(torch.equal(pushed[name], pulled[name]) for name in pushed)
    print(json.dumps({"identical": same, "class": type(model).__name__}))
"""


@pytest.mark.slow
def test_transformers_push_to_hub_then_from_pretrained_in_a_fresh_process(hub, tmp_path):
    weights = tmp_path / "pushed.safetensors"
    pusher = client_environment(hub, tmp_path / "pusher", token="pusher-token")
    puller = client_environment(hub, tmp_path / "puller", token="puller-token")
    pusher["HF_HUB_USER_AGENT_ORIGIN"], puller["HF_HUB_USER_AGENT_ORIGIN"] = "pusher", "puller"

    pushed = run_client(PUSH_SCRIPT, pusher, str(weights))
    pulled = run_client(PULL_SCRIPT, puller, str(weights))

    assert pulled == {"identical": True, "class": "BertModel"}
    last_commit = hub.commits("org/tiny")[-1]
    assert last_commit.sha == pushed["commit"]
    assert last_commit.token == "pusher-token"
    assert {"config.json", "model.safetensors", "README.md"} <= set(hub.files("org/tiny"))
    origins = hub.request_counts("origin")
    assert origins["pusher"] > 0 and origins["puller"] > 0
    assert all(request.method in ("GET", "HEAD") for request in hub.requests if request.origin == "puller")


TRAINER_SCRIPT = """
    import json, sys
    import torch
    from datasets import Dataset
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8,
        num_labels=1, problem_type="regression",
    )
    train = Dataset.from_dict({"input_ids": [[1, 2, 3, 4]] * 8, "labels": [0.5] * 8})
    arguments = TrainingArguments(
        output_dir=sys.argv[1], push_to_hub=True, hub_model_id="org/trained", hub_strategy="checkpoint",
        per_device_train_batch_size=4, num_train_epochs=2, save_strategy="epoch", use_cpu=True,
        disable_tqdm=True, report_to=[],
    )
    trainer = Trainer(model=BertForSequenceClassification(config), args=arguments, train_dataset=train)
    trainer.train()
    print(json.dumps({"commit": trainer.push_to_hub(commit_message="end of training").oid}))
"""


@pytest.mark.slow
def test_trainer_pushes_each_epoch_and_at_the_end(hub, tmp_path):
    output_dir = tmp_path / "run"
    pushed = run_client(TRAINER_SCRIPT, client_environment(hub, tmp_path / "trainer"), str(output_dir))

    titles = [commit.title for commit in hub.commits("org/trained")]
    assert titles[-1] == "end of training"
    # The Trainer pushes in the background and skips a save while the previous push still runs (a loaded machine).
    assert "Training in progress, epoch 1" in titles
    files = hub.files("org/trained")
    assert hub.commits("org/trained")[-1].sha == pushed["commit"]
    assert files["model.safetensors"] == (output_dir / "model.safetensors").read_bytes()
    assert "last-checkpoint/trainer_state.json" in files


def test_resolve_answers_with_the_headers_and_codes_the_client_reads():
    with HubTestServer() as hub:
        initial = hub.create_repo("org/seeded")
        content = bytes(range(256)) * 4
        seeded = hub.commit_files("org/seeded", {"data/blob.bin": content}, message="seed")

        def head(path: str) -> urllib.error.HTTPError:
            with pytest.raises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(urllib.request.Request(hub.endpoint + path, method="HEAD"))
            return raised.value

        missing_repo = head("/org/never-created/resolve/main/config.json")
        assert (missing_repo.code, missing_repo.headers["X-Error-Code"]) == (404, "RepoNotFound")
        missing_revision = head("/org/seeded/resolve/v9/data/blob.bin")
        assert (missing_revision.code, missing_revision.headers["X-Error-Code"]) == (404, "RevisionNotFound")
        missing_file = head(f"/org/seeded/resolve/{initial}/data/blob.bin")
        assert (missing_file.code, missing_file.headers["X-Error-Code"]) == (404, "EntryNotFound")
        assert missing_file.headers["X-Repo-Commit"] == initial

        with urllib.request.urlopen(hub.endpoint + "/org/seeded/resolve/main/data/blob.bin") as response:
            assert response.read() == content
            assert response.headers["ETag"] == f'"{git_blob_sha(content)}"'
            assert response.headers["X-Repo-Commit"] == seeded
            assert response.headers["Content-Length"] == str(len(content))
        ranged = urllib.request.Request(hub.endpoint + "/org/seeded/resolve/main/data/blob.bin")
        ranged.add_header("Range", "bytes=1000-")
        with urllib.request.urlopen(ranged) as response:
            assert response.status == 206
            assert response.read() == content[1000:]
            assert response.headers["Content-Range"] == f"bytes 1000-{len(content) - 1}/{len(content)}"


CONDITIONAL_SCRIPT = """
    import json
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    api.create_repo("org/conditional")

    def commit(name, parent):
        try:
            operations = [CommitOperationAdd(f"{name}.txt", name.encode())]
            return api.create_commit("org/conditional", operations, commit_message=name, parent_commit=parent).oid
        except HfHubHTTPError as error:
            return error.response.status_code

    first = commit("first", None)
    second = commit("second", first)  # on the head: lands
    stale = commit("stale", first)  # `first` is no longer the head
    print(json.dumps({"first": first, "second": second, "stale": stale}))
"""


@pytest.mark.slow
def test_a_commit_whose_parent_is_no_longer_the_head_is_refused_with_412(hub, tmp_path):
    result = run_client(CONDITIONAL_SCRIPT, client_environment(hub, tmp_path / "hf_home"))
    assert result["stale"] == 412
    commits = hub.commits("org/conditional")
    assert [commit.title for commit in commits] == ["initial commit", "first", "second"]
    assert [commit.sha for commit in commits[1:]] == [result["first"], result["second"]]
    assert "stale.txt" not in hub.files("org/conditional")


LOST_ANSWER_SCRIPT = """
    import json, sys
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("org/lost-answer")
    commit = api.upload_folder(repo_id="org/lost-answer", folder_path=sys.argv[1], commit_message="upload")
    print(json.dumps({"oid": commit.oid}))
"""


@pytest.mark.slow
def test_a_commit_whose_answer_is_lost_is_applied_and_the_plain_clients_retry_applied_again(hub, tmp_path):
    """What the `lose` fault stands for: the commit lands, its answer does not come, and `upload_folder` sends it
    again, unconditionally (`huggingface_hub` warns of this), so it lands twice."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "config.json").write_text("{}")
    hub.fail_commits("lose", 1, repo_id="org/lost-answer")
    result = run_client(LOST_ANSWER_SCRIPT, client_environment(hub, tmp_path / "hf_home"), str(tmp_path / "folder"))
    commits = hub.commits("org/lost-answer")
    assert [commit.title for commit in commits] == ["initial commit", "upload", "upload"]
    assert commits[-1].sha == result["oid"]  # the answer that came is the second commit's
    lost = [request.status for request in hub.requests if request.path == "/api/models/org/lost-answer/commit/main"]
    assert lost == [0, 200]
