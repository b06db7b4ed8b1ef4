"""A model taken from the Hub cache is checked before it loads, offline too. The client's cache names each blob by
the Hub's ETag of the file (the sha256 of a weights file, which the Hub keeps in LFS; the git blob id of any other),
so a cached file whose content no longer matches its blob's name has changed since it was downloaded: refused,
naming the file, with or without the Hub. Pushed and pulled with the real client through the test Hub."""

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from expression_perceiver.modeling import DNAPerceiverConfig, DNAPerceiverForSequenceClassification
from tests.hub_server import HubTestServer, client_environment
from tests.processes import process_timeout
from tests.small_models import SMALL_SIZES

REPOSITORY = Path(__file__).resolve().parents[2]

PUSH_AND_DOWNLOAD = textwrap.dedent(
    """
    import json, sys
    from huggingface_hub import HfApi
    from expression_perceiver.hub import resolve_model

    HfApi().create_repo("org/cached")
    HfApi().upload_folder(repo_id="org/cached", folder_path=sys.argv[1], commit_message="push")
    print(json.dumps({"folder": str(resolve_model("org/cached").folder)}))
    """
)

LOAD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from expression_perceiver.hub import ModelLocationError, resolve_model
    from expression_perceiver.modeling import DNAPerceiverForSequenceClassification

    def load():
        try:
            folder = resolve_model("org/cached").folder
        except ModelLocationError as error:
            return str(error)
        model = DNAPerceiverForSequenceClassification.from_pretrained(folder)
        return sum(parameter.detach().abs().sum().item() for parameter in model.parameters())

    result = {"intact": load()}
    if sys.argv[1] == "flip":
        weights = Path(sys.argv[2]).resolve()  # the cached blob behind the snapshot's link
        content = bytearray(weights.read_bytes())
        content[-1] ^= 0x01  # one byte of the last weight (an exponent bit), the size kept
        weights.write_bytes(bytes(content))
        result["corrupted"] = load()
    print(json.dumps(result))
    """
)


def run(script: str, environment: dict[str, str], *arguments: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        env={**environment, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=process_timeout(starts=1, work_s=10),
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def magnitude(model) -> float:
    return sum(parameter.detach().abs().sum().item() for parameter in model.parameters())


@pytest.mark.slow
def test_a_byte_flipped_in_the_cache_is_refused_offline_and_online(tmp_path):
    model = DNAPerceiverForSequenceClassification(DNAPerceiverConfig(**SMALL_SIZES, num_features=0))
    model.save_pretrained(tmp_path / "model")
    weights = (tmp_path / "model" / "model.safetensors").read_bytes()
    with HubTestServer() as hub:
        online = client_environment(hub, tmp_path / "hf_home")
        folder = Path(run(PUSH_AND_DOWNLOAD, online, str(tmp_path / "model"))["folder"])
        blob = (folder / "model.safetensors").resolve()
        assert blob.name == hashlib.sha256(weights).hexdigest()  # the cache names the weights by their sha256

        requests = len(hub.requests)
        offline = run(LOAD, {**online, "HF_HUB_OFFLINE": "1"}, "flip", str(folder / "model.safetensors"))
        assert len(hub.requests) == requests  # offline: the Hub was never asked
        assert offline["intact"] == pytest.approx(magnitude(model))  # intact, it loads offline
        assert offline["corrupted"].startswith("ValueError: org/cached: the cached model.safetensors is not the file")
        assert f"sha256 {hashlib.sha256(blob.read_bytes()).hexdigest()[:12]}..." in offline["corrupted"]
        assert f"where the cache names it {blob.name[:12]}..." in offline["corrupted"]
        assert "\n" not in offline["corrupted"]

        refused = run(LOAD, online, "keep")["intact"]
        assert refused.startswith("ValueError: org/cached: the downloaded model.safetensors is not the Hub's (sha256")


def test_every_cached_file_is_checked_against_its_blob_name(tmp_path):
    """The configuration too: a cached file under a git blob id is checked against it; links to blobs of other
    names, and files that are not links, have nothing to be checked against."""
    from expression_perceiver.hub import check_cached_files, git_blob_sha1

    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc"
    blobs.mkdir()
    (snapshot / "sub").mkdir(parents=True)
    contents = {"config.json": b'{"label_std": [2.0]}\n', "sub/model.safetensors": b"\x00" * 64}
    for name, content in contents.items():
        (blobs / "staging").write_bytes(content)
        digest = hashlib.sha256(content).hexdigest() if name.endswith(".safetensors") else None
        blob = blobs / (digest or git_blob_sha1(blobs / "staging"))
        (blobs / "staging").rename(blob)
        (snapshot / name).symlink_to(blob)
    (blobs / "etag-of-a-mirror").write_bytes(b"x")
    (snapshot / "other.txt").symlink_to(blobs / "etag-of-a-mirror")
    (snapshot / "plain.txt").write_bytes(b"not a link")
    assert check_cached_files("org/x", snapshot) == 2

    config = (snapshot / "config.json").resolve()
    config.write_bytes(b'{"label_std": [-2.0]}\n')
    with pytest.raises(ValueError, match=r"^org/x: the cached config.json is not the file the Hub sent \(git blob id "):
        check_cached_files("org/x", snapshot)
