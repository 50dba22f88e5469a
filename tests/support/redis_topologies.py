"""Redis Cluster and Sentinel, made of real redis-server processes on free ports.

A cluster: three masters started with `--cluster-enabled yes`, joined by
`redis-cli --cluster create`. Sentinel: a master, one replica and three sentinels
(`redis-server --sentinel`) watching it under one name.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support.redis_server import RedisServer, free_port, redis_binary

MASTER_NAME = "nexus-master"


def redis_cli() -> str:
    found = shutil.which("redis-cli")
    if not found:
        raise RuntimeError("redis-cli not found (Debian's redis-tools): it builds the cluster")
    return found


def _wait(condition: object, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if callable(condition) and condition():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {within} s")
        time.sleep(0.05)


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too: at most 55535."""
    rng = random.Random()
    while True:
        port = rng.randint(20000, 45000)
        if all(_free(p) for p in (port, port + 10000)):
            return port


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class ClusterNode(RedisServer):
    def __init__(self, directory: Path, appendonly: bool = False) -> None:
        super().__init__(directory, appendonly)
        self.port = cluster_port()

    def start(self, within: float = 10.0) -> ClusterNode:
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--save", "", "--appendonly", "no",
             "--cluster-enabled", "yes", "--cluster-config-file",
             str(self.directory / "nodes.conf"), "--cluster-node-timeout", "2000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self.client().ping(), f"cluster node on {self.port}", within)
        return self


class RedisClusterServers:
    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes = []
        for i in range(masters):
            (directory / f"node{i}").mkdir(parents=True, exist_ok=True)
            self.nodes.append(ClusterNode(directory / f"node{i}", appendonly=False))

    @property
    def url(self) -> str:  # a seed node: the client learns the rest
        return self.nodes[0].url

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    def start(self) -> RedisClusterServers:
        for node in self.nodes:
            node.start()
        subprocess.run([redis_cli(), "--cluster", "create", *self.addresses,
                        "--cluster-replicas", "0", "--cluster-yes"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for node in self.nodes:
            _wait(lambda n=node: "cluster_state:ok" in n.client().execute_command(
                "CLUSTER", "INFO"), "the cluster agreeing on its slots")
        return self

    def move_slot(self, slot: int) -> None:
        """Reshard one slot to another master, keys and all, as `redis-cli --cluster
        reshard` does: clients that knew the old owner get MOVED."""
        ids = {node: node.client().execute_command("CLUSTER", "MYID") for node in self.nodes}
        owner = next(node for node in self.nodes
                     if node.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
                     or self._owns(node, slot))
        target = next(node for node in self.nodes if node is not owner)
        target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
        owner.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        while keys := owner.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            owner.client().execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                           "KEYS", *keys)
        for node in (target, owner, *(n for n in self.nodes if n not in (target, owner))):
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        _wait(lambda: all(self._owns(target, slot) for _ in self.nodes), "the slot moving")

    @staticmethod
    def _owns(node: ClusterNode, slot: int) -> bool:
        for start, end, master, *_ in node.client().execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1]) == node.port
        return False

    def flush_scripts(self) -> None:
        for node in self.nodes:
            node.client().script_flush()

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


class Sentinels:
    """A master, a replica of it, and three sentinels that fail over in about a second."""

    def __init__(self, directory: Path) -> None:
        (directory / "master").mkdir(parents=True, exist_ok=True)
        (directory / "replica").mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.master = RedisServer(directory / "master", appendonly=False)
        self.replica = RedisServer(directory / "replica", appendonly=False)
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def start(self) -> Sentinels:
        self.master.start()
        self.replica.start()
        self.replica.client().execute_command("REPLICAOF", "127.0.0.1", str(self.master.port))
        _wait(lambda: self.master.client().info("replication")["connected_slaves"] == 1,
              "the replica attaching")
        for port in self.sentinel_ports:
            conf = self.directory / f"sentinel-{port}.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\n"
                            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2\n"
                            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
                            f"sentinel parallel-syncs {MASTER_NAME} 1\n")
            self.processes.append(subprocess.Popen(
                [redis_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        for port in self.sentinel_ports:
            _wait(lambda p=port: self._sentinel(p).execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME), "the sentinels up")
        return self

    @staticmethod
    def _sentinel(port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=1)

    def master_port(self) -> int:
        _host, port = self._sentinel(self.sentinel_ports[0]).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        return int(port)

    def wait_failover(self, within: float = 60.0) -> None:
        """Until the sentinels name the replica as the master, and it says so itself."""
        _wait(lambda: self.master_port() == self.replica.port
              and self.replica.client().info("replication")["role"] == "master",
              "the failover", within)

    def kill(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.master.kill()
        self.replica.kill()
