"""Benchmark cvm-migrate against rsync (-a, and -az with zstd) on the same data in the same
run: `sudo .venv/bin/python bench/run.py --rounds 3` (see bench/README.md)."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: `python bench/run.py`
    sys.path.insert(0, str(REPO))

from bench import datasets as ds  # noqa: E402
from bench import snapshot  # noqa: E402
from bench.netns import NAMES as TOPOLOGIES  # noqa: E402
from bench.netns import Topology, topology  # noqa: E402
from bench.proc import BenchError, ProcRegistry, drop_caches, ensure_gnu_time  # noqa: E402
from bench.report import (  # noqa: E402
    NOTES,
    Failure,
    Measurement,
    summarize,
    text_table,
    write_results,
)
from bench.tools import TOOL_NAMES, RunDirs, Tool, make_tools  # noqa: E402

DEFAULT_DATA = Path("/var/tmp/cvm-migrate-bench")
RESULTS = REPO / "bench" / "results"


def _csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items or any(t not in choices for t in items):
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}")
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset cache and work dir")
    p.add_argument("--datasets", type=_csv(ds.NAMES), default=list(ds.NAMES))
    p.add_argument("--topology", type=_csv(TOPOLOGIES), default=list(TOPOLOGIES))
    p.add_argument("--tools", type=_csv(TOOL_NAMES), default=list(TOOL_NAMES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--netns-rounds", type=int, help="rounds on netns (default: --rounds)")
    p.add_argument(
        "--netns-datasets", type=_csv(ds.NAMES), help="datasets on netns (default: --datasets)"
    )
    p.add_argument("--rate", default="200mbit", help="tbf rate of the netns link, each way")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per transfer")
    p.add_argument("--sender-args", default="", help='extra sender args, e.g. "--streams 4"')
    p.add_argument("--receiver-args", default="", help="extra receiver args")
    p.add_argument("--python", default=None, help="python for cvm-migrate (default: .venv)")
    p.add_argument(
        "--live-tree",
        action="store_true",
        help="run the working tree's code (default: a snapshot taken at start)",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failed transfer, report it and go on (exit status 1 at the end)",
    )
    p.add_argument(
        "--no-drop-caches", action="store_true", help="keep the page cache (warm source reads)"
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="where latest.{json,md} go")
    return p


def _fresh(path: Path) -> Path:
    if path.exists() or path.is_symlink():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _error_line(log_tail: str) -> str:
    lines = [line for line in log_tail.splitlines() if "error" in line.lower()]
    return lines[-1].strip() if lines else "(no error line in its output)"


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    registry: ProcRegistry
    env: dict[str, str]
    measurements: list[Measurement] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def run_topology(
        self, topo: Topology, tools: Sequence[Tool], datasets: Sequence[ds.Dataset], rounds: int
    ) -> None:
        """Every dataset, `rounds` rounds of every tool, the first tool rotating per round."""
        print(f"\n== {topo.name}: {topo.description}", flush=True)
        for dataset in datasets:
            for r in range(1, rounds + 1):
                shift = (r - 1) % len(tools)
                for tool in [*tools[shift:], *tools[:shift]]:
                    try:
                        m = self.measure(tool, dataset, topo, r)
                    except BenchError as exc:
                        failure = Failure(dataset.name, topo.name, tool.name, r, str(exc))
                        self.failures.append(failure)
                        print(f"  {dataset.name:10} r{r} {tool.name:11} FAILED: {exc}", flush=True)
                        if not self.args.keep_going:
                            raise
                        continue
                    self.measurements.append(m)
                    print(_progress(m), flush=True)

    def measure(
        self, tool: Tool, dataset: ds.Dataset, topo: Topology, round_no: int
    ) -> Measurement:
        """One transfer into a fresh target; raises BenchError if it failed or is incomplete."""
        name = f"{dataset.name}-{topo.name}-{tool.name}-r{round_no}"
        run_dir = _fresh(self.work / "runs" / name)
        target = _fresh(self.work / "target")
        dirs = RunDirs(work=run_dir, target=target, state=run_dir / "state")
        try:
            tool.start_server(topo, dirs)
            try:
                if not self.args.no_drop_caches:
                    drop_caches()
                load1 = os.getloadavg()[0]
                start = time.perf_counter()
                client = self.registry.start(
                    f"{tool.name}-client",
                    tool.client_argv(topo, dataset.path, dirs),
                    prefix=topo.client_prefix,
                    log_dir=run_dir,
                    env=self.env,
                )
                code = client.wait(self.args.timeout)
                client_seconds = time.perf_counter() - start
                subprocess.run([*topo.server_prefix, "sync"], check=True)
                seconds = time.perf_counter() - start
            finally:
                server_rss = tool.stop_server()
            if code != 0:
                tail = client.tail()
                raise BenchError(
                    f"{tool.name} client exited {code}: {_error_line(tail)}\n{tail}\n"
                    f"  logs in {run_dir}"
                )
            extra = tool.client_report(dirs, client)
            copied = ds.tree_stats(target)
            if copied != dataset.stats:
                raise BenchError(
                    f"{tool.name} made an INCOMPLETE copy of {dataset.name} on {topo.name}:\n"
                    f"  source {dataset.stats.describe()}\n  target {copied.describe()}\n"
                    f"  logs in {run_dir}"
                )
        finally:
            shutil.rmtree(target, ignore_errors=True)
        return Measurement(
            dataset=dataset.name,
            topology=topo.name,
            tool=tool.name,
            round=round_no,
            seconds=seconds,
            client_seconds=client_seconds,
            files=dataset.stats.files,
            bytes=dataset.stats.bytes,
            client_rss_kib=client.peak_rss_kib(),
            server_rss_kib=server_rss,
            wire_bytes=extra.get("wire_bytes"),
            load1=load1,
        )


def _mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.0f}"


def _progress(m: Measurement) -> str:
    return (
        f"  {m.dataset:10} r{m.round} {m.tool:11} {m.seconds:7.2f} s "
        f"(client {m.client_seconds:.2f} s, sync {m.seconds - m.client_seconds:.2f} s)  "
        f"{m.bytes / 1e6 / m.seconds:7.1f} MB/s  {m.files / m.seconds:6.0f} files/s  "
        f"RSS snd {_mib(m.client_rss_kib)} MiB rcv {_mib(m.server_rss_kib)} MiB  "
        f"load {m.load1:.1f}"
    )


def _meta(args: argparse.Namespace, python: str, argv: Sequence[str]) -> dict[str, Any]:
    rsync = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout
    return {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(["bench/run.py", *argv]),
        **snapshot.describe(REPO),
        "code": "working tree" if args.live_tree else "snapshot of the working tree at start",
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "rsync": rsync.splitlines()[0] if rsync else "?",
        "python": python,
        "sender_args": args.sender_args,
        "receiver_args": args.receiver_args,
        "rate": args.rate,
        "drop_caches": not args.no_drop_caches,
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0 and ("netns" in args.topology or not args.no_drop_caches):
        print(
            "run as root (drop_caches, network namespaces):\n"
            "  sudo .venv/bin/python bench/run.py --rounds 3\n"
            "(or, loopback only with a warm cache: --topology loopback --no-drop-caches)",
            file=sys.stderr,
        )
        return 2
    if shutil.which("rsync") is None:
        print("rsync is missing: apt-get install -y rsync", file=sys.stderr)
        return 2
    ensure_gnu_time()
    venv_python = REPO / ".venv" / "bin" / "python"
    python = args.python or (str(venv_python) if venv_python.exists() else sys.executable)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` runs

    datasets = {name: ds.ensure(name, args.data) for name in args.datasets}
    for name in args.netns_datasets or []:
        if name not in datasets:
            datasets[name] = ds.ensure(name, args.data)
    work = args.data / "work"
    meta = _meta(args, python, argv)
    code_dir = REPO if args.live_tree else snapshot.snapshot(REPO, work / "code")
    print(
        f"cvm-migrate code: {code_dir} (commit {meta['commit']}, "
        f"uncommitted: {meta['uncommitted']})"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(code_dir), *filter(None, [env.get("PYTHONPATH")])])
    env["CVM_MIGRATE_TOKEN"] = secrets.token_hex(24)
    registry = ProcRegistry()
    tools = make_tools(
        args.tools,
        registry,
        env,
        python,
        shlex.split(args.sender_args),
        shlex.split(args.receiver_args),
    )
    bench = Bench(args, work, registry, env)
    stopped: str | None = None
    try:
        for topo_name in args.topology:
            netns = topo_name == "netns"
            names = (args.netns_datasets if netns else None) or args.datasets
            rounds = (args.netns_rounds if netns else None) or args.rounds
            with topology(topo_name, args.rate) as topo:
                try:
                    bench.run_topology(topo, tools, [datasets[n] for n in names], rounds)
                finally:
                    registry.kill_all()  # before the namespaces go
    except BenchError as exc:
        stopped = str(exc).splitlines()[0]
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        registry.kill_all()
        shutil.rmtree(work / "target", ignore_errors=True)

    measurements, failures = bench.measurements, bench.failures
    rows = summarize(measurements, failures)
    if rows:
        print("\n" + text_table(rows))
        print("\n" + NOTES)
    if stopped:
        meta["stopped"] = stopped
    json_path, md_path = write_results(args.results, meta, measurements, failures, rows)
    print(f"\nwrote {json_path} and {md_path}")
    for f in failures:
        print(
            f"FAILED {f.dataset} {f.topology} {f.tool} r{f.round}: {f.error.splitlines()[0]}",
            file=sys.stderr,
        )
    if stopped:
        print(f"BENCHMARK STOPPED: {stopped}", file=sys.stderr)
    return 1 if failures or stopped else 0


if __name__ == "__main__":
    sys.exit(main())
