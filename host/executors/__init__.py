"""Where candidate training runs: in this process, in a local process pool, or on Ray.

Every executor takes `TrainJob`s and returns `concurrent.futures.Future`s of `TrainOutcome`,
so the search loop is the same whichever runs the training.

On Ray (docs/cluster.md) the task's dataset is loaded once on the driver and put in Ray's
object store; each training task gets the reference, so workers read no dataset files. A
task whose worker process or node dies is started again up to `max_retries` times (Ray's
task retries, for system failures only: an exception raised by the training is not
retried); then its future fails with `TrainingWorkerDied`, which the search records as that
candidate's failed training and goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from device_agent.errors import ConfigError, HilnasError
from host.search.jobs import TrainJob, TrainOutcome, load_dataset, run_training_job

log = logging.getLogger(__name__)

#: Ray: how many times a training whose worker died is started again (executor.max_retries)
DEFAULT_MAX_RETRIES = 1
#: Ray: how long the driver waits for a cluster's address to answer before giving up
CONNECT_TIMEOUT_S = 10.0


class TrainingWorkerDied(HilnasError):
    """The Ray worker (or node) running a training died on every attempt."""


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
    """Training in `workers` spawned processes (TensorFlow does not survive fork).

    Each process loads the dataset itself from HILNAS_DATA_DIR: they run on this machine.
    """

    name = "process"

    def __init__(self, workers: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        super().__init__(ProcessPoolExecutor(max_workers=workers, mp_context=spawn))


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"executor.ray_address = {address!r}: expected HOST:PORT (the head's GCS port, "
            "6379 by default), ray://HOST:PORT (Ray Client, 10001) or 'auto'"
        )
    return host.strip("[]"), int(port)


def check_ray_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ConfigError, within about `timeout_s`, unless `address` answers like Ray.

    `ray.init` retries a dead address for minutes, so this is asked first: a TCP
    connection, and for a GCS address (HOST:PORT) a gRPC channel that becomes ready.
    """
    client = address.startswith("ray://")
    host, port = _split_address(address.removeprefix("ray://"))
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: {reason} (is `ray start --head` "
            f"running there, and is port {port} open to this machine?)"
        ) from None
    if client:
        return  # Ray Client's server: ray.init has its own bounded retries
    import grpc

    # The GCS's own cheapest call: a listener that is not a Ray head (or a proxy) fails it.
    channel = grpc.insecure_channel(address)  # HOST:PORT, [V6]:PORT as given
    try:
        call = channel.unary_unary(
            "/ray.rpc.NodeInfoGcsService/GetClusterId",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        call(b"", timeout=timeout_s, wait_for_ready=True)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return  # a Ray head with token authentication: ray.init brings the token
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            why = f"no Ray GCS answered within {timeout_s:.0f} s"
        else:
            why = f"the port is open but it is not a Ray head's GCS ({code.name if code else exc})"
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: {why} (a head's address is "
            "HOST:PORT with the port of `ray start --head --port`, 6379 by default)"
        ) from None
    finally:
        channel.close()


def _nbytes(data: Any) -> int:
    """The bytes of the arrays a dataset holds (what its object-store copy is made of)."""
    arrays = vars(data).values() if hasattr(data, "__dict__") else [data]
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


class RayExecutor:
    """Training as Ray tasks on a cluster (`address`) or a local Ray instance (None).

    A task asks for one CPU. The dataset goes through the object store (`ray.put`, once per
    dataset); `dataset_bytes` says how much that is.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None,
        workers: int,
        max_retries: int = DEFAULT_MAX_RETRIES,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError(
                "executor.kind = 'ray' needs Ray: pip install 'hilnas[cluster]'"
            ) from exc
        self._ray = ray
        if address and address not in ("auto", "local"):
            check_ray_address(address, connect_timeout_s)
        if ray.is_initialized():
            log.info("using this process's Ray connection (%s)",
                     ray.get_runtime_context().gcs_address)
        else:
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = workers
            try:
                ray.init(**kwargs)
            except (ConnectionError, TimeoutError) as exc:
                raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
        self.max_retries = max_retries
        # Retries for system failures only (the worker process or its node died):
        # retry_exceptions=False leaves an exception raised by the training a failure.
        self._remote = ray.remote(
            num_cpus=1, max_retries=max_retries, retry_exceptions=False
        )(run_training_job)
        self._datasets: dict[Any, Any] = {}  # (task, data config) -> ObjectRef
        self.dataset_bytes = 0
        self._pending: set[Any] = set()
        self._lock = threading.Lock()

    def _dataset_ref(self, job: TrainJob) -> Any:
        """The job's dataset in the object store: loaded here (cached), put once."""
        key = (job.task, job.data)
        with self._lock:
            if key not in self._datasets:
                from host.tasks import task_class

                data = load_dataset(task_class(job.task)(job.data))
                self._datasets.clear()  # one dataset per search, as load_dataset keeps
                self._datasets[key] = self._ray.put(data)
                self.dataset_bytes = _nbytes(data)
                log.info("dataset in Ray's object store: %.2f MB", self.dataset_bytes / 1e6)
            return self._datasets[key]

    def submit(self, job: TrainJob) -> Future[TrainOutcome]:
        # The data travel as an object; a worker has no use for the driver's data path.
        ref = self._remote.remote(replace(job, data_dir=None), self._dataset_ref(job))
        with self._lock:
            self._pending.add(ref)
        result: Future[TrainOutcome] = Future()
        result.set_running_or_notify_cancel()

        def done(inner: Future[TrainOutcome]) -> None:
            with self._lock:
                self._pending.discard(ref)
            try:
                result.set_result(inner.result())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                result.set_exception(self._translate(exc, job))

        ref.future().add_done_callback(done)
        return result

    def _translate(self, exc: BaseException, job: TrainJob) -> BaseException:
        """A worker's death as TrainingWorkerDied; a training's own exception unwrapped."""
        errors = self._ray.exceptions
        died = tuple(
            getattr(errors, name)
            for name in ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError",
                         "LocalRayletDiedError")
            if hasattr(errors, name)
        )
        if isinstance(exc, died):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            attempts = self.max_retries + 1
            return TrainingWorkerDied(
                f"the Ray worker training {job.arch_key} died on each of {attempts} "
                f"attempt{'s' if attempts > 1 else ''} (executor.max_retries = "
                f"{self.max_retries}): {type(exc).__name__}: {first}"
            )
        if isinstance(exc, errors.RayTaskError) and isinstance(exc.cause, BaseException):
            return exc.cause
        return exc

    def shutdown(self, cancel: bool = False) -> None:
        # The cluster outlives the search; its trainings in flight and its data do not.
        with self._lock:
            pending, self._pending = list(self._pending), set()
            self._datasets.clear()
        if cancel:
            for ref in pending:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception as exc:  # noqa: BLE001 - best effort on the way out
                    log.debug("could not cancel a training: %s", exc)


def make_executor(
    kind: str,
    workers: int = 1,
    ray_address: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> Executor:
    if kind == "inprocess":
        return InProcessExecutor()
    if kind == "process":
        return ProcessPoolTrainingExecutor(workers)
    if kind == "ray":
        return RayExecutor(ray_address, workers, max_retries)
    raise ConfigError(f"executor.kind = {kind!r} is not one of: inprocess, process, ray")
