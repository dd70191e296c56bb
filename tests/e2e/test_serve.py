"""`nanobanana serve`, the no-work-pool path of deployments/README.md: the flow served from one
process, a run triggered with `prefect deployment run`, executed inside the serving process."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import cloudpickle
import pytest

from .conftest import PrefectStack, stop_process

BLOCK_NAME = "e2e-serve-toapis"


def test_flow_survives_pickling_by_value() -> None:
    """Served runs receive the flow function pickled by value, with only the globals its body uses:
    its parameters must still validate there (string annotations would not resolve)."""
    from prefect_nanobanana.flows import generate_image_set

    shipped = cloudpickle.loads(cloudpickle.dumps(generate_image_set))
    checked = shipped.validate_parameters(
        {"table": "t.csv", "toapis_credentials": "block-name", "row_range": [1, 5]}
    )
    assert checked["row_range"] == [1, 5] and checked["provider"] == "toapis"


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_served_flow_runs_without_a_work_pool(prefect_stack: PrefectStack, tmp_path: Path) -> None:
    from prefect_nanobanana.emulator import EmulatorServer

    stack = prefect_stack
    table = tmp_path / "prompts.csv"
    with open(table, "w", newline="") as fh:
        csv.writer(fh).writerows([("prompt",), ("a served banana",), ("a served pineapple",)])
    with EmulatorServer(latency=0.3, seed=5) as emulator:
        stack.save_toapis_block(BLOCK_NAME, emulator.url)
        serving = stack.start("serve", "nanobanana", "serve", "--name", "e2e-serve")
        try:
            deadline = time.monotonic() + 60
            while "being served" not in stack.logs["serve"].read_text(errors="replace"):
                assert serving.poll() is None and time.monotonic() < deadline, stack.report()
                time.sleep(0.5)
            parameters = {
                "table": str(table),
                "output": str(tmp_path / "out"),
                "toapis_credentials": BLOCK_NAME,
            }
            run = stack.wait_for_flow_run(
                stack.trigger("generate-image-set/e2e-serve", parameters), timeout=120
            )
        finally:
            stop_process(serving)
        assert run["state_type"] == "COMPLETED", f"{run['state_name']}\n{stack.report()}"
        assert emulator.ledger()["paid"] == 2
    assert (tmp_path / "out" / "manifest.parquet").exists()
