"""A checkpoint fetched from the Hub is checked against the Hub's record of each file before it loads: a weights
file with one byte changed (size kept) is refused, naming the file; an intact one loads."""

import subprocess
import sys
import textwrap
from pathlib import Path

from expression_perceiver.modeling import DNAPerceiverConfig, DNAPerceiverForSequenceClassification
from tests.hub_server import HubTestServer, client_environment
from tests.processes import process_timeout
from tests.small_models import SMALL_SIZES

REPOSITORY = Path(__file__).resolve().parents[2]

FETCH_TWICE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from expression_perceiver.hub import verified_snapshot

    folder = verified_snapshot("org/tiny")
    print("first:", sorted(p.name for p in folder.iterdir()))
    weights = (folder / "model.safetensors").resolve()  # the cached blob behind the snapshot's link
    content = bytearray(weights.read_bytes())
    content[-1] ^= 0x01  # one byte of the weights, size kept
    weights.write_bytes(bytes(content))
    try:
        verified_snapshot("org/tiny")
        print("second: loaded")
    except ValueError as error:
        print("second:", error)
    """
)


def test_a_corrupted_weights_file_is_refused_naming_it(tmp_path):
    config = DNAPerceiverConfig(num_labels=1, **SMALL_SIZES)
    DNAPerceiverForSequenceClassification(config).save_pretrained(tmp_path / "model")
    files = {name: (tmp_path / "model" / name).read_bytes() for name in ("config.json", "model.safetensors")}
    with HubTestServer() as hub:
        hub.create_repo("org/tiny")
        hub.commit_files("org/tiny", files)
        environment = {**client_environment(hub, tmp_path / "hf_home"), "PYTHONPATH": str(REPOSITORY)}
        completed = subprocess.run(
            [sys.executable, "-c", FETCH_TWICE],
            env=environment,
            capture_output=True,
            text=True,
            timeout=process_timeout(starts=1, work_s=5),
        )
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second = completed.stdout.strip().splitlines()[-2:]
    assert "model.safetensors" in first and "config.json" in first
    assert second.startswith("second: org/tiny: the downloaded model.safetensors is not the Hub's (sha256 ")
    assert "corrupted download or cache" in second
