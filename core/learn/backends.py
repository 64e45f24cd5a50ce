"""Where a run's networks train: here, one after the other (``local``), or as Ray tasks (``ray``).

A backend only trains. The process that runs :func:`core.learn.fit` (the *driver*)
prepares the data, writes the whole run store (status, heartbeat, metrics as the
epochs arrive, checkpoints, out-of-fold scores) and answers cancel; with ``ray`` it
sends the prepared arrays to the workers once through Ray's object store
(``ray.put``), so a worker on another machine never needs the driver's files.

With ``ray`` every pending fold is one task (``num_cpus`` = the run's ``threads`` or 1,
one GPU where the cluster has GPUs); the refits follow, since their epoch count is the
folds' median best epoch. A task runs :func:`core.learn.network.train_network`, the very
function the local backend runs, with fit's torch settings (deterministic
algorithms; ``config.threads`` threads, 1 when unset): the same seed and thread count
give the same bytes (the local backend's default is every core, and a CPU matrix
product split over another number of threads may round differently: on the demo the
folds came out identical at 2 threads vs 1, the larger refits not). Each
worker reports its epochs to a small actor (the *mailbox*) that the driver polls;
the driver's cancel flag goes back through it and workers stop between epochs.

Ray is imported only when the ``ray`` backend is opened (``pip install 'vidid[ray]'``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
from typing import Callable, Iterator

from core.errors import DataError

#: Backend name -> what it does (the CLI's ``--backend`` choices, the dashboard's select).
BACKENDS = {
    "local": "train every network in this process, one after the other",
    "ray": "train the folds at once as Ray tasks (then the refits), on a Ray cluster "
           "or a local Ray instance started for the run",
}

#: Seconds between two looks of the driver at its tasks, their epochs and the cancel flag.
POLL_S = 0.25
#: Seconds to wait for a Ray address to answer before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0

OnEpoch = Callable[[int, dict], None]
OnDone = Callable[[int, dict, dict], None]


def backend_names() -> tuple[str, ...]:
    """The registered backends.

    >>> backend_names()
    ('local', 'ray')
    """
    return tuple(BACKENDS)


def ray_available() -> bool:
    """Whether Ray can be imported here (without importing it)."""
    return importlib.util.find_spec("ray") is not None


def check_backend(name: str, address: str | None = None) -> None:
    """Refuse an unknown backend, a missing Ray, an address given to ``local`` or one
    that does not answer (within ``CONNECT_TIMEOUT_S``).

    >>> check_backend("local")
    >>> check_backend("spark")
    Traceback (most recent call last):
    ...
    ValueError: unknown backend 'spark'; choose one of local, ray
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "local" and address:
        raise ValueError(f"a Ray address ({address!r}) is for the ray backend, not local")
    if name == "ray" and not ray_available():
        raise ValueError("backend 'ray' needs Ray, which is not installed here: "
                         "pip install 'vidid[ray]'")
    if name == "ray" and address:
        _check_reachable(address)


@contextlib.contextmanager
def open_backend(name: str = "local", address: str | None = None, *,
                 num_cpus: int | None = None) -> Iterator["RayBackend | None"]:
    """Open a backend for :func:`core.learn.fit` (``None`` for ``local``).

    Parameters
    ----------
    name : "local" or "ray"
    address : a Ray cluster (``HOST:PORT`` of its head, ``ray://HOST:PORT`` or ``auto``);
        None starts a local Ray instance for the run (and stops it after), unless this
        process is already connected to Ray, which is then used as is
    num_cpus : CPUs of a local instance (default: all)

    Examples
    --------
    >>> with open_backend("local") as backend:
    ...     print(backend)
    None
    >>> with open_backend("ray") as backend:  # doctest: +SKIP
    ...     fit(TrainConfig(), data, run, backend=backend)
    """
    check_backend(name, address)
    if name == "local":
        yield None
        return
    backend = RayBackend.connect(address, num_cpus=num_cpus)
    try:
        yield backend
    finally:
        backend.close()


def _check_reachable(address: str) -> None:
    """Fail fast on an address nobody answers (``ray.init`` would retry for minutes)."""
    if address == "auto":
        return  # a cluster on this machine; ray.init says at once when there is none
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise DataError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise DataError(f"--ray-address {address}: cannot reach a Ray cluster there "
                        f"({exc.strerror or exc})") from None


class RayBackend:
    """A connection to Ray that trains networks as tasks; see the module docstring.

    Use :func:`open_backend`, which closes it (and stops a Ray instance it started).
    """

    name = "ray"

    def __init__(self, *, address: str | None, owns: bool) -> None:
        self.address = address
        self.owns = owns  # started or connected by us: shut down on close
        self._held: tuple[object, object] | None = None  # (prepared data, its object ref)

    @classmethod
    def connect(cls, address: str | None = None, *, num_cpus: int | None = None) -> "RayBackend":
        """Connect to the cluster at ``address``, or start a local instance (``None``)."""
        check_backend("ray", address)  # before ray.init, which retries a dead address for minutes
        import ray

        if ray.is_initialized():
            return cls(address=address, owns=False)
        import core

        # Ship this very code to every worker: a cluster's nodes need vidid's
        # dependencies installed, not this checkout of it.
        runtime_env = {"py_modules": [os.path.dirname(os.path.abspath(core.__file__))]}
        options = dict(include_dashboard=False, logging_level=logging.WARNING,
                       log_to_driver=False, runtime_env=runtime_env)
        if address is None:
            options["num_cpus"] = num_cpus
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise DataError(f"--ray-address {address}: cannot connect to Ray "
                            f"({' '.join(str(exc).split())[:200]})") from None
        return cls(address=address, owns=True)

    def close(self) -> None:
        """Drop the data held in the object store; shut Ray down if we connected."""
        self._held = None
        if self.owns:
            import ray

            ray.shutdown()

    def _put(self, p: object):
        """The object ref of the prepared data, put once for the folds and the refits."""
        import ray

        if self._held is None or self._held[0] is not p:
            self._held = (p, ray.put(p))
        return self._held[1]

    def train_networks(self, config, p, ks: list[int], epochs: int, *, on_epoch: OnEpoch,
                       on_done: OnDone, should_stop: Callable[[], bool]) -> dict[int, dict]:
        """Train networks ``ks`` of the prepared data ``p`` as Ray tasks, all at once.

        ``on_epoch(k, row)`` gets every epoch row as it arrives, ``on_done(k, payload,
        info)`` every finished network (before the next one is looked at);
        ``should_stop()`` is polled, and once true the workers stop between epochs.

        Returns
        -------
        dict
            ``{k: checkpoint payload}`` of every network trained.

        Raises
        ------
        TrainingCancelled
            when ``should_stop()`` stopped a network before its last epoch
        """
        import ray

        from core.learn.config import TrainingCancelled

        if not ks:
            return {}
        if should_stop():
            raise TrainingCancelled(f"cancelled before networks {sorted(ks)} started")
        cluster = ray.cluster_resources()
        gpus = 1 if config.device != "cpu" and cluster.get("GPU", 0) >= 1 else 0
        mailbox = ray.remote(num_cpus=0)(_Mailbox).remote()
        task = ray.remote(_train_task).options(num_cpus=config.threads or 1, num_gpus=gpus)
        data = self._put(p)
        refs = {task.remote(config, data, k, epochs, mailbox): k for k in ks}
        pending, out, stopping, stopped = list(refs), {}, False, []
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
                # the epochs of a finished task are all in the mailbox before its result
                for k, row in ray.get(mailbox.take.remote()):
                    on_epoch(k, row)
                for ref in ready:
                    k = refs[ref]
                    try:
                        blob, info = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, TrainingCancelled):
                            stopped.append(k)
                            continue
                        raise cause if isinstance(cause, Exception) else exc
                    payload = _load_checkpoint(blob)
                    on_done(k, payload, info)
                    out[k] = payload
                if not stopping and should_stop():
                    stopping = True
                    ray.get(mailbox.stop.remote())
        finally:
            for ref in pending:  # a failure, Ctrl-C: what is still running is lost anyway
                ray.cancel(ref, force=True)
            ray.kill(mailbox)
        if stopped:
            raise TrainingCancelled(f"cancelled: networks {sorted(out)} of {sorted(ks)} finished")
        return out


class _Mailbox:
    """Ray actor between the driver and its workers: epoch rows in, the stop flag out."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, dict]] = []
        self._stop = False

    def report(self, k: int, row: dict) -> None:
        self._rows.append((k, row))

    def take(self) -> list[tuple[int, dict]]:
        rows, self._rows = self._rows, []
        return rows

    def stop(self) -> None:
        self._stop = True

    def stopped(self) -> bool:
        return self._stop


def _load_checkpoint(blob: bytes) -> dict:
    """A checkpoint a worker sent as ``torch.save`` bytes (loaded safely, on the CPU).

    Workers send bytes, not the dict: Ray's own transport of tensors keeps their
    values but not the sharing of objects inside them, so ``torch.save`` of what
    arrives writes a different (equally valid) file; loading torch's own bytes
    gives the driver the file the local backend writes, byte for byte.
    """
    import io

    import torch

    from core.io.safe_pickle import torch_safe_globals

    with torch.serialization.safe_globals(torch_safe_globals()):
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def _train_task(config, p, k: int, epochs: int, mailbox) -> tuple[bytes, dict]:
    """One Ray task: network ``k``, trained exactly as ``fit`` trains it locally;
    returns its checkpoint as ``torch.save`` bytes and the ``.done`` info."""
    import io

    import ray
    import torch

    from core.learn.config import TrainingCancelled, resolve_device
    from core.learn.network import train_network

    if ray.get(mailbox.stopped.remote()):
        raise TrainingCancelled(f"cancelled before network {k} started")
    # fit's own settings (core.learn.fit.fit): the same kernels, the same thread count
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(config.threads or 1)
    payload, info = train_network(config, p, k, epochs, device=resolve_device(config.device),
                                  on_epoch=lambda row: ray.get(mailbox.report.remote(k, row)),
                                  should_stop=lambda: ray.get(mailbox.stopped.remote()))
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue(), info


__all__ = ["BACKENDS", "RayBackend", "backend_names", "check_backend", "open_backend",
           "ray_available"]
