"""A real Milvus standalone server on loopback, from the PyPI package `milvus` (embedded Milvus 2.3), for tests and
benchmarks.

The package's own `default_server.start()` is not used: its bundled config leaves every component's `ip:` empty, so
the server advertises the machine's first non-loopback address and then cannot reach its own parts (it never opens
its port), and its embedded etcd always takes the fixed ports 2379/2380. Here the config the package writes is
completed (every `ip:` set to 127.0.0.1, etcd given free ports through its own config file), and the binary is run
in its own process group, so that `stop()` and `kill()` end it and anything it started.

Run on its own (for `rag bench` or by hand):
    python tests/milvus_server.py --dir /tmp/milvus [--port 19530] [--auth]
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MilvusServer", "ServerStartError", "free_port", "ROOT_USER", "ROOT_PASSWORD"]

COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
PORT_KEYS = (
    "root_coord_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)
ROOT_USER, ROOT_PASSWORD = "root", "Milvus"  # Milvus's built-in superuser and its documented initial password


class ServerStartError(RuntimeError):
    """The Milvus server could not be started here (package missing, port taken, never healthy)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MilvusServer:
    """One Milvus standalone server whose data, config and logs live in `base_dir`.

    Args:
        base_dir: folder for the binary, config, data and logs (created).
        authorization: start with authorization on (user root, password ROOT_PASSWORD until changed).
        nice: scheduling niceness of the server process (it shares the machine with the tests).
        proxy_port: the port clients connect to (0: a free one).
    """

    base_dir: Path
    authorization: bool = False
    nice: int = 0
    proxy_port: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        return self.ports["proxy_port"]

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "logs"

    def configure(self) -> None:
        """Unpack the binary and write the config once; restarts reuse both (same ports, same data)."""
        try:
            from milvus import MilvusServerConfig, _initialize_data_files
        except ImportError:
            raise ServerStartError("the `milvus` package is not installed (pip install milvus==2.3.5)") from None
        self.base_dir = Path(self.base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {key: free_port() for key in (*PORT_KEYS, "metrics_port", "etcd_port", "etcd_peer_port")}
        if self.proxy_port:
            self.ports["proxy_port"] = self.proxy_port
        config = MilvusServerConfig(
            data_dir=str(self.base_dir),
            authorization_enabled=self.authorization,
            **{k: self.ports[k] for k in (*PORT_KEYS, "etcd_port")},
        )
        for component in COMPONENTS:
            config.set(f"{component}.ip", "127.0.0.1")
        # The session lease stays at its default (30 s): after a restart the server serves searches only once its
        # previous run's sessions expired, and a shorter lease brings it back sooner, but on a busy machine (10 s,
        # two cores shared with the tests) the keep-alives came late enough for the server to lose its own sessions.
        config.set("authorization_enabled", self.authorization)
        config.resolve()  # writes configs/milvus.yaml
        yaml = self.base_dir / "configs" / "milvus.yaml"
        etcd_yaml = self.base_dir / "configs" / "etcd.yaml"
        client, peer = f"http://127.0.0.1:{self.ports['etcd_port']}", f"http://127.0.0.1:{self.ports['etcd_peer_port']}"
        etcd_yaml.write_text(
            f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\ninitial-cluster: default={peer}\n",
            encoding="utf-8",
        )
        text = yaml.read_text(encoding="utf-8")
        if "\netcd:\n" not in text:
            raise ServerStartError(f"{yaml} has no etcd section; the `milvus` package is not the expected 2.3.5")
        yaml.write_text(text.replace("\netcd:\n", f"\netcd:\n  config:\n    path: {etcd_yaml}\n", 1), encoding="utf-8")
        _initialize_data_files(str(self.base_dir))

    def start(self, timeout_s: float = 180.0) -> MilvusServer:
        """Start the server and wait until it reports healthy and answers on its port."""
        if not self.ports:
            self.configure()
        if self.proc is not None:
            return self
        binary = self.base_dir / "bin" / "milvus"
        env = dict(
            os.environ,
            DEPLOY_MODE="STANDALONE",
            METRICS_PORT=str(self.ports["metrics_port"]),
            MILVUS_RUN_DIR=str(self.base_dir / "run"),
            LD_LIBRARY_PATH=f"{binary.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}",
        )
        self.log_dir.mkdir(exist_ok=True)
        with open(self.log_dir / "milvus-stdout.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(binary), "run", "standalone"],
                cwd=self.base_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None,
            )
        try:
            self._wait_healthy(timeout_s)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.ports['metrics_port']}/healthz"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ServerStartError(f"the Milvus server exited while starting; see {self.log_dir}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    healthy = b"OK" in resp.read()
            except OSError:
                healthy = False
            if healthy and self._port_open():
                return
            time.sleep(0.3)
        raise ServerStartError(f"the Milvus server was not healthy within {timeout_s:.0f} s; see {self.log_dir}")

    def healthy(self) -> bool:
        """Whether the server runs and reports itself healthy now."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['metrics_port']}/healthz", timeout=5) as resp:
                return b"OK" in resp.read()
        except OSError:
            return False

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _end(self, sig: int, wait_s: float) -> None:
        if self.proc is None:
            return
        group = self.proc.pid  # started in a new session: its process group id is its pid
        try:
            os.killpg(group, sig)
            self.proc.wait(timeout=wait_s)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left of the group (a server that ignored SIGTERM, a child it started) goes now.
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, up to 5 s), then kill whatever is left of the process group."""
        self._end(signal.SIGTERM, 5)

    def kill(self) -> None:
        """Kill at once (SIGKILL), as a crash or a power cut would."""
        self._end(signal.SIGKILL, 0)

    def restart(self, timeout_s: float = 180.0) -> None:
        self.stop()
        self.start(timeout_s)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Run a Milvus standalone server on 127.0.0.1 until interrupted.")
    p.add_argument("--dir", required=True, help="folder for its data, config and logs")
    p.add_argument("--port", type=int, default=0, help="port clients connect to (default: a free one)")
    p.add_argument("--auth", action="store_true", help="authorization on (user root, password Milvus)")
    args = p.parse_args(argv)
    server = MilvusServer(Path(args.dir), authorization=args.auth, proxy_port=args.port).start()
    print(f"Milvus at {server.uri} (logs in {server.log_dir}); Ctrl+C stops it", flush=True)
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
