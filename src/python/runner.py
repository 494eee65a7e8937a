# bansuri's runner for Python custom tasks: {"no-interface": true, "command": "pkg.mod:Class"}.
#
# bansuri carries this file inside its binary (src/python.rs) and starts it as
#   python3 -u -c "<bootstrap>" pkg.mod:Class
# with the file's text in $BANSURI_PYTHON_RUNNER and the task's settings (JSON) in
# $BANSURI_PYTHON_TASK; both are removed from the environment before user code runs.
#
# It provides the `bansuri` package of the Bansuri manual (AbstractTask, TaskConfig and its
# sections; Notifier, FailureInfo and CommandNotifier in bansuri.alerts), and `task_base`
# (the hot-reload manager's `from task_base import AbstractTask, TaskConfig`) unless the
# working directory has a task_base of its own; imports the class with the task's working
# directory first on sys.path,
# instantiates it with the TaskConfig, calls run() on a thread and exits with its return
# value. The stop signal bansuri sends (SIGTERM unless `stopsignal` says otherwise) calls
# stop(); bansuri's SIGKILL after `stoptime` ends a run() that does not return. Any Python
# error is printed with its traceback (into the job log) and fails the run (exit 1).
#
# With $BANSURI_PYTHON_NOTIFIER set (`"notify": "module:Class"`), it runs a notifier
# instead: the class (a Notifier) is created with its constructor's parameters taken from
# environment variables of the same name in capitals (`webhook_url` from $WEBHOOK_URL),
# and notify(FailureInfo) is called once; True (or None) exits 0, False or an error 1.

import abc
import dataclasses
import datetime
import importlib
import importlib.util
import inspect
import json
import os
import signal
import sys
import threading
import traceback
import types
from typing import Any, Dict, List, Optional

RUNNER_ERROR = 1


# ----- the `bansuri` package of the manual -------------------------------------------------


@dataclasses.dataclass
class IdentificationConfig:
    """Who the task is: name, command (the class spec), user, working directory."""

    name: str = ""
    command: str = ""
    user: Optional[str] = None
    working_directory: Optional[str] = None
    description: str = ""


@dataclasses.dataclass
class SchedulingConfig:
    """When it runs: `timer` or `schedule_cron`, `timeout` (strings as in the config, e.g.
    "30s"), `depends_on`."""

    schedule_cron: Optional[str] = None
    timer: Optional[str] = None
    timeout: Optional[str] = None
    timezone: Optional[str] = None
    depends_on: List[str] = dataclasses.field(default_factory=list)

    @property
    def is_periodic(self) -> bool:
        return bool(self.timer or self.schedule_cron)


@dataclasses.dataclass
class FailureControlConfig:
    """What a failure does: attempts (`times`), `on_fail`, `success_codes`, `notify`."""

    times: int = 1
    on_fail: str = "stop"
    success_codes: List[int] = dataclasses.field(default_factory=lambda: [0])
    notify: str = "none"


@dataclasses.dataclass
class ResourcesConfig:
    """Process settings: nice `priority`, `environment_file`, the task's `env`."""

    priority: int = 0
    environment_file: Optional[str] = None
    env: Dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class LoggingConfig:
    """Where output goes: file paths, or None for the job log (stderr None: combined)."""

    stdout_path: Optional[str] = None
    stderr_path: Optional[str] = None


def _section(cls, raw: Dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})


@dataclasses.dataclass
class TaskConfig:
    """A task's settings in the manual's sections."""

    identification: IdentificationConfig = dataclasses.field(
        default_factory=IdentificationConfig
    )
    scheduling: SchedulingConfig = dataclasses.field(default_factory=SchedulingConfig)
    failure_control: FailureControlConfig = dataclasses.field(
        default_factory=FailureControlConfig
    )
    resources: ResourcesConfig = dataclasses.field(default_factory=ResourcesConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)

    @classmethod
    def from_dict(cls, raw: Dict[str, Any]) -> "TaskConfig":
        """From a config entry: kebab-case or snake_case keys."""
        flat = {str(k).replace("-", "_"): v for k, v in raw.items()}
        if "stdout" in flat:
            flat.setdefault("stdout_path", flat["stdout"])
        if "stderr" in flat and flat["stderr"] not in (None, "combined", "log"):
            flat.setdefault("stderr_path", flat["stderr"])
        return cls(
            identification=_section(IdentificationConfig, flat),
            scheduling=_section(SchedulingConfig, flat),
            failure_control=_section(FailureControlConfig, flat),
            resources=_section(ResourcesConfig, flat),
            logging=_section(LoggingConfig, flat),
        )

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


class AbstractTask(abc.ABC):
    """Abstract base class for tasks: bansuri calls run() for the exit code, and stop()
    when the run is to end (timeout, shutdown, removal from the config)."""

    def __init__(self, config: TaskConfig):
        self.config = config

    @abc.abstractmethod
    def run(self) -> int:
        """Execute the task; return its exit code."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Make run() return soon."""


@dataclasses.dataclass
class FailureInfo:
    """What a notifier is told (the manual's 9.4.2), plus `event`, `result` (the end in
    words) and `host`/`job_id`. `return_code` is the exit code, minus the signal number
    for a run killed by a signal, -1 for a timeout or a start that failed."""

    task_name: str
    command: str
    working_directory: Optional[str]
    return_code: int
    attempt: int
    max_attempts: int
    timestamp: datetime.datetime
    description: str
    stdout: str
    stderr: str
    event: str = "failure"
    result: str = ""
    host: str = ""
    job_id: str = ""
    message: str = ""


class Notifier(abc.ABC):
    """Base class for notification handlers."""

    @abc.abstractmethod
    def notify(self, failure_info: FailureInfo) -> bool:
        """Deliver the notice; True when it was sent."""


class CommandNotifier(Notifier):
    """Notify via a shell command, the message on its stdin (what `notify_command` does)."""

    def __init__(self, notify_command: str, timeout: int = 30):
        self.notify_command = notify_command
        self.timeout = timeout

    def notify(self, failure_info: FailureInfo) -> bool:
        import subprocess

        done = subprocess.run(
            self.notify_command,
            shell=True,
            input=failure_info.message.encode(),
            timeout=self.timeout,
        )
        return done.returncode == 0


def _install_package() -> None:
    """Make `bansuri.base.task_base`, `bansuri.base.config.task_config` (and the section
    modules) importable, whatever else is installed."""
    mods = {}
    for name in [
        "bansuri",
        "bansuri.base",
        "bansuri.base.config",
        "bansuri.base.task_base",
        "bansuri.base.config.task_config",
        "bansuri.base.config.proc_id_config",
        "bansuri.alerts",
        "bansuri.alerts.notifier",
        "bansuri.alerts.cmd_notifier",
    ]:
        m = types.ModuleType(name)
        m.__file__ = "<bansuri-runner>"
        if name in ("bansuri", "bansuri.base", "bansuri.base.config", "bansuri.alerts"):
            m.__path__ = []  # a package
        mods[name] = m
        sys.modules[name] = m
    sections = {
        "TaskConfig": TaskConfig,
        "IdentificationConfig": IdentificationConfig,
        "SchedulingConfig": SchedulingConfig,
        "FailureControlConfig": FailureControlConfig,
        "ResourcesConfig": ResourcesConfig,
        "LoggingConfig": LoggingConfig,
    }
    for k, v in sections.items():
        v.__module__ = "bansuri.base.config.task_config"
        setattr(mods["bansuri.base.config.task_config"], k, v)
    AbstractTask.__module__ = "bansuri.base.task_base"
    tb = mods["bansuri.base.task_base"]
    tb.AbstractTask = AbstractTask
    tb.TaskConfig = TaskConfig
    mods["bansuri.base.config.proc_id_config"].IdentificationConfig = IdentificationConfig
    mods["bansuri"].base = mods["bansuri.base"]
    mods["bansuri.base"].task_base = tb
    mods["bansuri.base"].config = mods["bansuri.base.config"]
    mods["bansuri.base.config"].task_config = mods["bansuri.base.config.task_config"]
    mods["bansuri.base.config"].proc_id_config = mods["bansuri.base.config.proc_id_config"]
    for k, v in {"Notifier": Notifier, "FailureInfo": FailureInfo}.items():
        v.__module__ = "bansuri.alerts.notifier"
        setattr(mods["bansuri.alerts.notifier"], k, v)
    CommandNotifier.__module__ = "bansuri.alerts.cmd_notifier"
    mods["bansuri.alerts.cmd_notifier"].CommandNotifier = CommandNotifier
    mods["bansuri.alerts.cmd_notifier"].Notifier = Notifier
    mods["bansuri.alerts.cmd_notifier"].FailureInfo = FailureInfo
    mods["bansuri"].alerts = mods["bansuri.alerts"]
    mods["bansuri.alerts"].notifier = mods["bansuri.alerts.notifier"]
    mods["bansuri.alerts"].cmd_notifier = mods["bansuri.alerts.cmd_notifier"]
    # The hot-reload manager's flat module (`from task_base import AbstractTask,
    # TaskConfig`), unless the working directory brings a task_base of its own.
    if importlib.util.find_spec("task_base") is None:
        sys.modules["task_base"] = tb


# ----- running one task --------------------------------------------------------------------


def _fail(what: str) -> None:
    """The traceback of the exception being handled, then one line saying what failed."""
    traceback.print_exc()
    print(f"bansuri: {what}", file=sys.stderr, flush=True)


def _load(spec: str):
    if ":" in spec:
        module_name, _, class_path = spec.partition(":")
    else:
        module_name, _, class_path = spec.rpartition(".")
    module = importlib.import_module(module_name)
    obj = module
    for part in class_path.split("."):
        obj = getattr(obj, part)
    return obj


def _is_task(cls) -> bool:
    """An AbstractTask, or (with a task_base of the user's own) a class with run and stop."""
    if issubclass(cls, AbstractTask):
        return True
    own = sys.modules.get("task_base")
    return (
        own is not None
        and own is not sys.modules["bansuri.base.task_base"]
        and all(callable(getattr(cls, m, None)) for m in ("run", "stop"))
    )


def _constructor_args(cls) -> Dict[str, Any]:
    """The constructor's parameters from the environment: `webhook_url` from $WEBHOOK_URL
    (converted for an int, float or bool annotation). KeyError names a missing one."""
    args: Dict[str, Any] = {}
    for p in list(inspect.signature(cls).parameters.values()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        var = p.name.upper()
        raw = os.environ.get(var)
        if raw is None:
            if p.default is p.empty:
                raise KeyError(f"parameter `{p.name}`: set {var} in the task's env")
            continue
        kind = p.annotation
        if kind is bool or kind == "bool":
            args[p.name] = raw.strip().lower() in ("1", "true", "yes", "on")
        elif kind in (int, float) or kind in ("int", "float"):
            args[p.name] = {"int": int, "float": float}.get(kind, kind)(raw)
        else:
            args[p.name] = raw
    return args


def _notify(spec: str, cls, notice_json: str) -> int:
    """Notifier mode: create `cls` and call notify() once with the notice."""
    if not isinstance(cls, type) or not callable(getattr(cls, "notify", None)):
        print(
            f"bansuri: {spec} is not a notifier: a subclass of bansuri.alerts.notifier.Notifier with notify(failure_info)",
            file=sys.stderr,
            flush=True,
        )
        return RUNNER_ERROR
    n = json.loads(notice_json)
    n["timestamp"] = datetime.datetime.fromisoformat(n["timestamp"])
    info = FailureInfo(**n)
    try:
        args = _constructor_args(cls)
    except KeyError as e:
        print(f"bansuri: cannot create {spec}: {e.args[0]}", file=sys.stderr, flush=True)
        return RUNNER_ERROR
    except Exception:
        _fail(f"cannot create {spec}: a constructor parameter has a bad value")
        return RUNNER_ERROR
    try:
        sent = cls(**args).notify(info)
    except Exception:
        _fail(f"{spec}.notify() raised an exception")
        return RUNNER_ERROR
    if sent is False:
        print(f"bansuri: {spec}.notify() returned False", file=sys.stderr, flush=True)
        return RUNNER_ERROR
    return 0


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    # Threads the task left behind do not keep the run alive.
    os._exit(code)


def main() -> None:
    settings = json.loads(os.environ.pop("BANSURI_PYTHON_TASK"))
    notifier = os.environ.pop("BANSURI_PYTHON_NOTIFIER", None)
    notice = os.environ.pop("BANSURI_PYTHON_NOTICE", "{}")
    spec = settings["command"] if notifier is None else notifier
    workdir = settings.get("working_directory") or os.getcwd()
    if workdir not in sys.path:
        sys.path.insert(0, workdir)
    _install_package()
    config = TaskConfig(
        identification=_section(IdentificationConfig, settings),
        scheduling=_section(SchedulingConfig, settings),
        failure_control=_section(FailureControlConfig, settings),
        resources=_section(ResourcesConfig, settings),
        logging=LoggingConfig(
            stdout_path=settings.get("stdout"), stderr_path=settings.get("stderr")
        ),
    )

    try:
        cls = _load(spec)
    except Exception:
        _fail(f"cannot import {spec} (sys.path starts with {workdir})")
        _exit(RUNNER_ERROR)
    if notifier is not None:
        _exit(_notify(spec, cls, notice))
    if not isinstance(cls, type) or not _is_task(cls):
        print(
            f"bansuri: {spec} is not a subclass of bansuri.base.task_base.AbstractTask",
            file=sys.stderr,
            flush=True,
        )
        _exit(RUNNER_ERROR)
    try:
        task = cls(config)
    except Exception:
        _fail(f"{spec}(config) raised an exception")
        _exit(RUNNER_ERROR)

    result: Dict[str, Any] = {}

    def work() -> None:
        try:
            result["code"] = task.run()
        except BaseException:
            _fail(f"{cls.__name__}.run() raised an exception")
            result["error"] = True

    stopping = threading.Event()

    def on_signal(signum, _frame) -> None:
        if stopping.is_set():
            return
        stopping.set()
        try:
            task.stop()
        except Exception:
            _fail(f"{cls.__name__}.stop() raised an exception")

    for name in {"SIGTERM", "SIGINT", "SIG" + settings.get("stop_signal", "TERM")}:
        sig = getattr(signal, name, None)
        if sig is not None and sig != signal.SIGKILL:
            signal.signal(sig, on_signal)

    worker = threading.Thread(target=work, name=f"bansuri:{config.identification.name}")
    worker.daemon = True
    worker.start()
    # join() returns to run the signal handler (stop()) when a signal comes.
    while worker.is_alive():
        worker.join()

    if result.get("error"):
        _exit(RUNNER_ERROR)
    code = result.get("code")
    if code is None:
        code = 0
    if not isinstance(code, int):
        print(
            f"bansuri: {cls.__name__}.run() returned {code!r}, not an exit code (int)",
            file=sys.stderr,
            flush=True,
        )
        _exit(RUNNER_ERROR)
    _exit(code & 0xFF)


main()
