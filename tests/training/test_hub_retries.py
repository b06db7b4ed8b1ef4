"""A push lands once however often the client sends it. Under `bound_hub_requests` (what a training run with
`--push_to_hub` sets up), each commit is conditional on the branch head it was first sent on: the client's retry of
a commit whose answer was lost is refused by the Hub (412) and answered as the success it stands for, and a commit
that someone else's overtook is sent again on the new head. Pushes go through `upload_folder`, as the Trainer's do,
against the test Hub, which applies a commit and then loses its answer (`fail_commits("lose", ...)`)."""

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.hub_server import HubTestServer, client_environment
from tests.processes import process_timeout

REPOSITORY = Path(__file__).resolve().parents[2]
TIMEOUT_S = 1.0  # the client's read timeout

PUSH = textwrap.dedent(
    """
    import json, sys
    from huggingface_hub import HfApi
    from expression_perceiver.training.trainer import bound_hub_requests

    bound_hub_requests(float(sys.argv[3]))
    api = HfApi()
    api.create_repo(sys.argv[1], exist_ok=True)
    commit = api.upload_folder(repo_id=sys.argv[1], folder_path=sys.argv[2], commit_message="Final model")
    print(json.dumps({"oid": commit.oid}))
    """
)


def push(hub: HubTestServer, repo_id: str, tmp_path: Path) -> subprocess.Popen:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "dna_perceiver"}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    environment = client_environment(hub, tmp_path / "hf_home")
    environment["PYTHONPATH"] = str(REPOSITORY)
    return subprocess.Popen(
        [sys.executable, "-c", PUSH, repo_id, str(folder), str(TIMEOUT_S)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def pushed_commit(process: subprocess.Popen, wait_s: float = 0) -> str:
    stdout, stderr = process.communicate(timeout=process_timeout(starts=1, work_s=10, wait_s=wait_s))
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])["oid"]


def wait_for(condition, what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"waited {limit_s} s for {what}"
        time.sleep(0.005)


def commit_requests(hub: HubTestServer, repo_id: str) -> list[int]:
    return [request.status for request in hub.requests if request.path == f"/api/models/{repo_id}/commit/main"]


@pytest.mark.slow
def test_a_commit_whose_answers_are_all_lost_lands_once(tmp_path):
    with HubTestServer() as hub:
        hub.fail_commits("lose", math.inf, repo_id="org/lost")  # every commit that lands goes unanswered
        oid = pushed_commit(push(hub, "org/lost", tmp_path))
        commits = hub.commits("org/lost")
        assert [commit.title for commit in commits] == ["initial commit", "Final model"]
        assert commits[-1].sha == oid  # the client reports the commit that landed
        assert commit_requests(hub, "org/lost") == [0, 412]  # landed unanswered; its retry refused
        assert hub.files("org/lost")["model.safetensors"] == bytes(range(256)) * 64


@pytest.mark.slow
def test_a_lost_answer_followed_by_another_commit_is_still_found(tmp_path):
    """Someone else commits after ours landed and before the retry: the retry is refused all the same, and ours is
    found one commit below the head."""
    with HubTestServer() as hub:
        hub.fail_commits("lose", 1, repo_id="org/followed")
        process = push(hub, "org/followed", tmp_path)
        wait_for(lambda: commit_requests(hub, "org/followed") == [0], "the unanswered commit")
        hub.commit_files("org/followed", {"notes.txt": b"another writer\n"}, message="someone else")
        oid = pushed_commit(process)
        commits = hub.commits("org/followed")
        assert [commit.title for commit in commits] == ["initial commit", "Final model", "someone else"]
        assert commits[1].sha == oid
        assert commit_requests(hub, "org/followed") == [0, 412]


@pytest.mark.slow
def test_a_commit_overtaken_while_it_stalled_is_sent_again_on_the_new_head(tmp_path):
    """The first attempt never lands (the server stalls past the client's timeout) and someone else commits
    meanwhile: the conditional retry is refused as stale and the commit goes on top of the new head, as an
    unconditional one would have."""
    stall_s = 30.0
    with HubTestServer() as hub:
        hub.fail_commits("stall", stall_s, repo_id="org/overtaken")
        process = push(hub, "org/overtaken", tmp_path)
        wait_for(lambda: commit_requests(hub, "org/overtaken") == [0], "the stalled commit")
        other = hub.commit_files("org/overtaken", {"notes.txt": b"another writer\n"}, message="someone else")
        hub.fail_commits(None, repo_id="org/overtaken")
        oid = pushed_commit(process)
        commits = hub.commits("org/overtaken")
        assert [commit.title for commit in commits] == ["initial commit", "someone else", "Final model"]
        assert (commits[1].sha, commits[2].sha) == (other, oid)
        assert set(hub.files("org/overtaken")) == {".gitattributes", "notes.txt", "config.json", "model.safetensors"}
        assert commit_requests(hub, "org/overtaken") == [0, 412, 200]
