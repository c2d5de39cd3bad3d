"""Several hosts on one machine, made of Linux network namespaces, for real network faults.

``Network(["redis", "w1", "w2"])`` makes one namespace per host (``jr-<pid>-<n>-<host>``) and a
"switch" namespace holding a bridge; each host has an ``eth0`` whose veth peer is a port of that
bridge, an address in a private ``10.231.<n>.0/24``, and ``lo`` up. Nothing is added to the root
namespace: no interface, no address, no rule (the addresses cannot clash with anything, as no
route outside these namespaces knows them). Processes run inside with ``ip netns exec``; a
thread of this process can ``enter`` a host too (``setns``), so a test's own client talks over
the same wires as the workers. The faults:

* ``partition(a, b)``: ``iptables -I INPUT -s <other> -j DROP`` in *both* namespaces (packets
  are silently lost, as on a real partition: a DROP in OUTPUT would fail the sender's write at
  once with EPERM instead); ``heal(a, b)`` deletes the rules;
* ``link_down(host)`` / ``link_up(host)``: the host's ``eth0`` down (its route goes with it, so
  its own sends fail at once) and up again.

Latency and loss need a qdisc this kernel may lack (``netem``); ``jobrunner.lab.chaos.proxy``
adds them in userspace on the path instead. ``stop`` (or leaving the ``with`` block, even on an
error) kills every process started here and in the namespaces, then deletes the namespaces,
which deletes their veths. Needs root, ``ip`` (iproute2) and ``iptables``; ``unavailable()``
says why not, for a clear skip.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobrunner.dev.processes import end_process

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
PREFIX = "jr-"
_sequence = itertools.count(1)


class NetnsError(RuntimeError):
    """A namespace, a link or a rule could not be made."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def unavailable() -> str | None:
    """Why namespaces cannot be made here (for a skip message), or None when they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add, iptables)"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian package {package})"
    name = f"{PREFIX}{os.getpid()}-probe"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    try:
        rules = subprocess.run(["ip", "netns", "exec", name, "iptables", "-S"],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        if rules.returncode != 0:
            return f"iptables does not work in a namespace: {rules.stderr.strip()}"
    finally:
        _ip("netns", "del", name, check=False)
    return None


def _setns(path: str) -> None:
    """Move the calling thread (only it) into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Host:
    """One namespace: its short name, the namespace's name and its address on the bridge."""

    name: str
    netns: str
    address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.command(argv), capture_output=True, text=True, timeout=30)
        if check and done.returncode != 0:
            raise NetnsError(f"{self.name}: {' '.join(argv)}: {done.stderr.strip()}")
        return done

    def enter(self) -> None:
        """Move the calling thread into this host for good (a thread of its own, say a client's
        event loop: every socket it opens from now on is on this host)."""
        _setns(str(NETNS_DIR / self.netns))

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread on this host for the block; sockets opened inside stay there."""
        saved = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        try:
            self.enter()
            try:
                yield
            finally:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(saved, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "could not return to the original netns")
        finally:
            os.close(saved)


class Network:
    """Hosts on one bridge; use as a context manager (everything is removed on exit)."""

    def __init__(self, hosts: Iterable[str], *, subnet: str | None = None) -> None:
        names = list(hosts)
        if len(set(names)) != len(names) or not names:
            raise ValueError("host names must be distinct, and at least one")
        for name in names:
            if not name.isalnum() or len(name) > 12:
                raise ValueError(f"host name {name!r}: letters and digits, 12 at most")
        seq = next(_sequence)
        self.tag = f"{PREFIX}{os.getpid()}-{seq}"
        net = ipaddress.ip_network(subnet or f"10.231.{seq % 256}.0/24")
        addresses = list(net.hosts())
        if len(addresses) < len(names):
            raise ValueError(f"{net} is too small for {len(names)} hosts")
        self.prefixlen = net.prefixlen
        self.switch = f"{self.tag}-switch"
        self.hosts = {name: Host(name, f"{self.tag}-{name}", str(addresses[i]))
                      for i, name in enumerate(names)}  # fmt: skip
        self._made: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._rules: set[tuple[str, str]] = set()

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Network:
        try:
            remove_stale()
            self._add_netns(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "dev", "br0", "up")
            for host in self.hosts.values():
                self._add_netns(host.netns)
                # made inside the host's namespace, its peer straight into the switch's: the
                # root namespace never holds either end, even for a moment
                _ip("-n", host.netns, "link", "add", "eth0", "type", "veth", "peer", "name",
                    host.name, "netns", self.switch)  # fmt: skip
                _ip("-n", self.switch, "link", "set", "dev", host.name, "master", "br0", "up")
                _ip("-n", host.netns, "addr", "add", f"{host.address}/{self.prefixlen}",
                    "dev", "eth0")  # fmt: skip
                _ip("-n", host.netns, "link", "set", "dev", "eth0", "up")
                _ip("-n", host.netns, "link", "set", "dev", "lo", "up")
        except BaseException:
            self.stop()
            raise
        return self

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)

    def stop(self) -> None:
        """Kill what runs in the namespaces, then delete them (their veths go with them)."""
        for proc in self._procs:
            end_process(proc)
        self._procs.clear()
        for name in reversed(self._made):
            _kill_inside(name)
            _ip("netns", "del", name, check=False)
        self._made.clear()
        self._rules.clear()

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- processes -------------------------------------------------------------------------

    def spawn(
        self, host: str, argv: Sequence[str], *, log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:  # fmt: skip
        """Start ``argv`` inside ``host`` (``ip netns exec`` execs it: the pid is its own)."""
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                self.hosts[host].command(argv), stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, env={**os.environ, **(env or {})}, start_new_session=True,
            )  # fmt: skip
        self._procs.append(proc)
        return proc

    # ---- faults ----------------------------------------------------------------------------

    def partition(self, a: str, b: str) -> None:
        """Drop every packet between ``a`` and ``b``, silently, both ways."""
        for here, there in ((a, b), (b, a)):
            if (here, there) in self._rules:
                continue
            self.hosts[here].run("iptables", "-I", "INPUT", "-s", self.hosts[there].address,
                                 "-j", "DROP")  # fmt: skip
            self._rules.add((here, there))

    def heal(self, a: str, b: str) -> None:
        for here, there in ((a, b), (b, a)):
            if (here, there) not in self._rules:
                continue
            self.hosts[here].run("iptables", "-D", "INPUT", "-s", self.hosts[there].address,
                                 "-j", "DROP")  # fmt: skip
            self._rules.discard((here, there))

    @contextlib.contextmanager
    def partitioned(self, a: str, b: str) -> Iterator[None]:
        """``a`` and ``b`` cannot reach each other for the block."""
        self.partition(a, b)
        try:
            yield
        finally:
            self.heal(a, b)

    def link_down(self, host: str) -> None:
        _ip("-n", self.hosts[host].netns, "link", "set", "dev", "eth0", "down")

    def link_up(self, host: str) -> None:
        _ip("-n", self.hosts[host].netns, "link", "set", "dev", "eth0", "up")

    def rules(self, host: str) -> str:
        """The host's iptables rules (``iptables -S``), to show or check."""
        return self.hosts[host].run("iptables", "-S").stdout


def _kill_inside(netns: str) -> None:
    """SIGKILL whatever still runs in ``netns`` (only namespaces this module made)."""
    found = _ip("netns", "pids", netns, check=False).stdout.split()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_stale() -> list[str]:
    """Delete namespaces this module made in a process that is gone (a SIGKILLed test run);
    returns their names. Only ``jr-<pid>-...`` names whose pid is no longer alive."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if not name.startswith(PREFIX) or len(parts) < 3 or not parts[1].isdigit():
            continue
        if Path(f"/proc/{parts[1]}").exists():
            continue
        _kill_inside(name)
        _ip("netns", "del", name, check=False)
        removed.append(name)
    return removed
