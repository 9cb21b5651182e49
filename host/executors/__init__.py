"""Where candidate training runs: in this process, in a local process pool, or on Ray.

Every executor takes `TrainJob`s and returns `concurrent.futures.Future`s of `TrainOutcome`,
so the search loop is the same whichever runs the training.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol

from device_agent.errors import ConfigError
from host.search.jobs import TrainJob, TrainOutcome, run_training_job

log = logging.getLogger(__name__)


class Executor(Protocol):
    name: str

    def submit(self, job: TrainJob) -> Future[TrainOutcome]: ...

    def shutdown(self, cancel: bool = False) -> None: ...


class _PoolExecutor:
    """Training jobs on a concurrent.futures pool."""

    name = ""

    def __init__(self, pool: ThreadPoolExecutor | ProcessPoolExecutor) -> None:
        self._pool = pool

    def submit(self, job: TrainJob) -> Future[TrainOutcome]:
        return self._pool.submit(run_training_job, job)

    def shutdown(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class InProcessExecutor(_PoolExecutor):
    """Training in a thread of this process (one at a time), so measurement can overlap."""

    name = "inprocess"

    def __init__(self) -> None:
        super().__init__(ThreadPoolExecutor(max_workers=1, thread_name_prefix="train"))


class ProcessPoolTrainingExecutor(_PoolExecutor):
    """Training in `workers` spawned processes (TensorFlow does not survive fork)."""

    name = "process"

    def __init__(self, workers: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        super().__init__(ProcessPoolExecutor(max_workers=workers, mp_context=spawn))


class RayExecutor:
    """Training as Ray tasks on a cluster (`address`) or a local Ray instance (None)."""

    name = "ray"

    def __init__(self, address: str | None, workers: int) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError(
                "executor.kind = 'ray' needs Ray: pip install 'hilnas[cluster]'"
            ) from exc
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = workers
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
        self._remote = ray.remote(num_cpus=1)(run_training_job)

    def submit(self, job: TrainJob) -> Future[TrainOutcome]:
        future: Future[TrainOutcome] = self._remote.remote(job).future()
        return future

    def shutdown(self, cancel: bool = False) -> None:
        pass  # the cluster outlives the search


def make_executor(kind: str, workers: int = 1, ray_address: str | None = None) -> Executor:
    if kind == "inprocess":
        return InProcessExecutor()
    if kind == "process":
        return ProcessPoolTrainingExecutor(workers)
    if kind == "ray":
        return RayExecutor(ray_address, workers)
    raise ConfigError(f"executor.kind = {kind!r} is not one of: inprocess, process, ray")
