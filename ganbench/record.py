"""The run's record: result.json written at the start of a job and completed at its end, whatever the end."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from ganbench import results
from ganbench.distributed import launch_rank
from ganbench.errors import RecordError

log = logging.getLogger("ganbench")


def finish(record, run_dir, module, trainer, callbacks, start, cfg) -> None:
    from ganbench.loggers import finish_wandb

    record["finished"] = results.now()
    record["wall_time_s"] = round(time.perf_counter() - start, 3)
    if module is not None:
        record["g_steps"] = module.g_step
    if callbacks:
        thr = callbacks["Throughput"]
        record["train_time_s"] = round(thr.seconds, 3)
        record["g_steps_per_s"] = round(thr.rate, 4) if thr.seconds else None
        ev = callbacks.get("Evaluation")
        if ev is not None:
            final = ev.history[-1] if ev.history else {}
            record["eval_time_s"] = round(ev.seconds, 3)
            record["metrics"] = {
                "primary": ev.primary(module, final) if module is not None else ev.evaluator.primary,
                "protocol": {**ev.evaluator.protocol(), **(module.run_protocol() if module is not None else {})},
                "final_step": final.get("g_step"), "final": {k: v for k, v in final.items() if k != "g_step"},
                "best_step": (ev.best or {}).get("g_step"),
                "best": {k: v for k, v in (ev.best or {}).items() if k != "g_step"},
                "history": ev.history}
        if "CompileNetworks" in callbacks:
            record["compiled"] = callbacks["CompileNetworks"].compiled
        ckpt = callbacks["Checkpointer"]
        drop_last = record["status"] == "completed" and not ckpt.keep_last
        record["files"] = {
            "last_ckpt": None if drop_last else _rel(ckpt.last, run_dir),
            "best_ckpt": _rel(ckpt.dirpath / "best.ckpt", run_dir),
            "samples": [_rel(Path(p), run_dir) for p in callbacks["SampleGrid"].written]}
    unsaved = None
    if launch_rank() == 0 and (trainer is None or trainer.global_rank == 0):
        try:
            results.write_json_atomic(run_dir / "result.json", record)
        except OSError as exc:  # e.g. disk full: the previous result.json (status running) and last.ckpt stay
            unsaved = exc
        else:
            if callbacks and record["files"]["last_ckpt"] is None:  # checkpoint.keep_last=false, once recorded
                callbacks["Checkpointer"].last.unlink(missing_ok=True)
    finish_wandb()
    if unsaved is not None:
        message = (f"could not write {run_dir / 'result.json'} ({unsaved}); the run ended {record['status']} at "
                   f"generator step {record.get('g_steps')}; its checkpoints are kept: free space and rerun the "
                   f"same command to record it")
        if sys.exc_info()[0] is None:  # do not mask an error already on its way out
            raise RecordError(message)
        log.error(message)
    summary = f"{record['status']}: {record.get('g_steps', 0)} generator steps in {record['wall_time_s']:.1f}s"
    if record.get("diverged"):
        summary += f"; diverged at generator step {record['diverged']['g_step']} ({record['diverged']['non_finite']})"
    best = record.get("metrics", {}).get("best")
    if best:
        key = record["metrics"]["primary"]
        summary += f"; best {key}={best.get(key):.4g} at step {record['metrics']['best_step']}"
    if launch_rank() == 0:
        log.info("%s; run directory: %s", summary, run_dir)


def _rel(path: Path, run_dir: Path) -> str | None:
    return str(path.relative_to(run_dir)) if path.exists() else None
