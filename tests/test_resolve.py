"""Models and datasets resolve and download the Ultralytics way; failures are fast and clear; resume edge cases.

A loopback HTTP server on 127.0.0.1 stands in for the internet (nothing leaves the machine). Every CLI command runs in
a process of its own with its own Ultralytics settings (``YOLO_CONFIG_DIR``: weights_dir, datasets_dir and runs_dir
inside the test's folder), because Ultralytics reads them at import; the real settings and folders are never written.
Those processes are forks of one warm interpreter (``WARM``) that has imported torch, torchvision, OpenCV and
matplotlib, which read no Ultralytics setting, but not Ultralytics or yolocustom: each command still imports those
under its own settings and environment, and the five seconds of torch imports are paid once per module, not per
command.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SHARED_DATASETS, median_seconds, run_recipe, write_recipe

from yolocustom.datasets import resolve_dataset, split_image_paths
from yolocustom.errors import DataError
from yolocustom.resolve import probe

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


# -- fixtures ----------------------------------------------------------------------------------------------------------


@dataclass
class Server:
    """A loopback HTTP server over ``root``; ``hits`` counts GET requests per path."""

    url: str
    root: Path
    hits: Counter[str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("served")
    hits: Counter[str] = Counter()

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] += 1
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", root, hits)
    finally:
        httpd.shutdown()
        httpd.server_close()


WARM = r"""
import gc, json, os, runpy, sys
# the slow imports, done once (not pandas or ray.tune: pyarrow starts a thread, which a fork would not carry over)
import cv2, matplotlib, torch, torch._inductor.config, torchvision

gc.freeze()  # the children's collections skip (so do not copy) the inherited objects: exit in 0.6 s, not 1.8 s

assert not {"ultralytics", "yolocustom"} & set(sys.modules), "each command must import them under its own settings"
assert len(os.listdir("/proc/self/task")) == 1, "a forked process keeps only the forking thread"
print("ready", flush=True)
for line in iter(sys.stdin.readline, ""):
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        break
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
else:
    sys.exit(0)
# the forked child becomes `python ARGV` in the request's folder, environment and output files, and exits as it would
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
    os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
os.chdir(req["cwd"])
os.environ.clear()
os.environ.update(req["env"])
flag, target, *args = req["argv"]
sys.argv = ["-c" if flag == "-c" else target, *args]  # run_module puts the module's path first, as -m does
if flag == "-c":
    exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


class Warm:
    """Runs ``python -m MODULE ARGS`` or ``python -c CODE ARGS`` as forks of the ``WARM`` interpreter."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.count = env, logs, itertools.count()
        self.proc: subprocess.Popen[str] | None = None
        self.ready = False

    def start(self) -> None:
        """Start the interpreter; its imports run while the caller goes on."""
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WARM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
            start_new_session=True,  # its own process group: the hang guard kills it with its child
        )
        self.ready = False

    def _ready(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:  # killed by the hang guard: a new one
            self.start()
        assert self.proc is not None and self.proc.stdout is not None
        if not self.ready:
            line = self.proc.stdout.readline()
            assert line == "ready\n", f"the warm interpreter did not start ({line!r}; its stderr is above)"
            self.ready = True
        return self.proc

    def run(
        self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python ARGV`` in ``cwd`` with exactly ``env``; ``timeout`` is a hang guard, not a speed bound (a loaded
        machine took over 300 s for one train)."""
        proc = self._ready()
        assert proc.stdin is not None and proc.stdout is not None
        out, err = (self.logs / f"{next(self.count)}.{name}" for name in ("out", "err"))
        req = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
        proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.flush()
        if not select.select([proc.stdout], [], [], timeout)[0]:
            os.killpg(proc.pid, signal.SIGKILL)  # the next command starts a new one
            proc.wait()
            raise TimeoutError(f"python {' '.join(argv)[:200]} ran over {timeout} s")
        returncode = int(proc.stdout.readline())
        return subprocess.CompletedProcess(argv, returncode, out.read_text(), err.read_text())

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.communicate(timeout=60)  # stdin closed: it exits


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warm]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(YOLO_OFFLINE="1", OMP_NUM_THREADS="1")  # OMP_NUM_THREADS is read when torch loads: here
    runner = Warm(env, tmp_path_factory.mktemp("cli_output"))
    runner.start()
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, coco8_yaml: Path, warm: Warm) -> Path:
    """A finished 1-epoch yolo26n run on COCO8 at imgsz 32: its weights folder (last.pt stripped, best.pt). Its users
    all run commands: ``warm`` is asked for first so that its imports overlap this training."""
    folder = tmp_path_factory.mktemp("pretrained")
    trainer = run_recipe(write_recipe(folder, coco8_yaml, epochs=1))
    return Path(trainer.wdir)


@dataclass
class UltraHome:
    """Private Ultralytics settings for a command, and the warm interpreter that runs it."""

    env: dict[str, str]
    weights_dir: Path
    datasets_dir: Path
    cwd: Path
    warm: Warm


@pytest.fixture
def ultra_home(tmp_path: Path, warm: Warm) -> UltraHome:
    from ultralytics.utils import SETTINGS

    cfg = tmp_path / "ultralytics_cfg"
    (cfg / "Ultralytics").mkdir(parents=True)
    weights_dir, datasets_dir, cwd = tmp_path / "weights", tmp_path / "datasets", tmp_path / "work"
    cwd.mkdir()
    settings = {
        **dict(SETTINGS),
        "weights_dir": str(weights_dir),
        "datasets_dir": str(datasets_dir),
        "runs_dir": str(tmp_path / "ultra_runs"),
        "sync": False,
    }
    (cfg / "Ultralytics" / "settings.json").write_text(json.dumps(settings, indent=2))
    env = {**warm.env, "YOLO_CONFIG_DIR": str(cfg)}
    return UltraHome(env, weights_dir, datasets_dir, cwd, warm)


def cli(home: UltraHome, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m yolocustom ARGS`` in ``home`` (its settings, its working directory), in a process of its own."""
    return home.warm.run(["-m", "yolocustom", *args], home.cwd, env or home.env)


def closed_port() -> int:
    """A loopback port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- models ------------------------------------------------------------------------------------------------------------


def test_url_model_downloads_once_then_reused_and_fine_tunes(
    server: Server, finished_run: Path, ultra_home: UltraHome, coco8_yaml: Path
) -> None:
    shutil.copy(finished_run / "best.pt", server.root / "x.pt")
    url = f"{server.url}/x.pt"
    recipe = write_recipe(ultra_home.cwd, coco8_yaml, model=url, epochs=1)
    first = cli(ultra_home, "train", str(recipe))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (ultra_home.weights_dir / "x.pt").is_file()  # where YOLO(url) puts it: weights_dir
    assert server.hits["/x.pt"] == 1
    assert "Downloading" in first.stderr
    assert "Transferred 708/708 items from pretrained weights" in first.stdout + first.stderr  # fine-tuned from it

    second = cli(ultra_home, "train", str(recipe))
    assert second.returncode == 0, second.stderr[-3000:]
    assert server.hits["/x.pt"] == 1  # reused, not fetched again
    assert "Downloading" not in second.stderr
    assert "Transferred 708/708" in second.stdout + second.stderr


def test_official_name_in_weights_dir_and_quiet_dry_run(
    finished_run: Path, ultra_home: UltraHome, coco8_yaml: Path
) -> None:
    """``yolo26n.pt`` sitting in weights_dir resolves by its bare name (no download, none possible); the dry-run's
    stdout is the plan alone, and ``--verbose`` shows Ultralytics' set-up output."""
    ultra_home.weights_dir.mkdir()
    shutil.copy(finished_run / "best.pt", ultra_home.weights_dir / "yolo26n.pt")
    features = {"freeze": {"layers": "backbone", "epochs": 1}}
    recipe = write_recipe(ultra_home.cwd, coco8_yaml, features, model="yolo26n.pt", epochs=2)
    quiet = cli(ultra_home, "train", str(recipe), "--dry-run")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stdout.startswith("yolocustom plan for yolo26n.pt"), quiet.stdout[:500]
    assert "Frozen parameters" in quiet.stdout and "total frozen" in quiet.stdout
    for noise in ("Transferred", "Freezing layer", "Overriding model.yaml", "summary:", "Scanning"):
        assert noise not in quiet.stdout, noise  # Ultralytics' set-up output stays off stdout
    assert "Transferred" not in quiet.stderr and "Downloading" not in quiet.stderr  # INFO dropped, nothing fetched
    assert len(quiet.stdout.splitlines()) < 50
    assert "warning:" not in quiet.stderr  # a pretrained .pt: freeze is what it is for

    verbose = cli(ultra_home, "train", str(recipe), "--dry-run", "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "Transferred 708/708" in verbose.stdout and "Freezing layer" in verbose.stdout
    assert len(verbose.stdout.splitlines()) > len(quiet.stdout.splitlines()) + 100
    assert not list(ultra_home.cwd.glob("*.pt"))  # found in weights_dir: nothing fetched into the working directory


def local_failure_seconds(home: UltraHome, coco8_yaml: Path) -> float:
    """Seconds of ``yolocustom train`` refusing a local checkpoint that does not exist, run now: the same start-up and
    resolution path as a download, without the network. The baseline download failures are bounded by (no absolute
    bound: on a loaded machine the start-up alone can take tens of seconds)."""
    missing = home.cwd / "no-such-folder" / "w.pt"
    recipe = write_recipe(home.cwd / "baseline", coco8_yaml, model=str(missing), epochs=1)
    start = time.perf_counter()
    result = cli(home, "train", str(recipe))
    elapsed = time.perf_counter() - start
    assert result.returncode == 1 and f"error: model: checkpoint '{missing}' not found" in result.stderr, result.stderr
    return elapsed


def test_official_name_offline_fails_fast_and_clearly(ultra_home: UltraHome, coco8_yaml: Path) -> None:
    """No network (a dead proxy makes sure nothing leaves the machine, wherever the test runs): exit 1 within seconds
    of a failure that needs no network (no retry ladder of 5/10/20 s, no 30 s connect timeout), one paragraph naming
    the model, where it was looked for, the URL tried, and how to place it by hand."""
    base = local_failure_seconds(ultra_home, coco8_yaml)
    recipe = write_recipe(ultra_home.cwd, coco8_yaml, model="yolo26n.pt", epochs=1)
    dead = f"http://127.0.0.1:{closed_port()}"
    env = {**ultra_home.env, "HTTPS_PROXY": dead, "https_proxy": dead, "HTTP_PROXY": dead, "http_proxy": dead}
    start = time.perf_counter()
    result = cli(ultra_home, "train", str(recipe), env=env)
    elapsed = time.perf_counter() - start
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert elapsed <= 2 * base + 3, f"took {elapsed:.1f}s, {base:.1f}s without the network"
    assert "retrying" not in result.stderr
    assert "Traceback" not in result.stderr
    err = result.stderr.strip().splitlines()[-1]  # one paragraph
    assert err.startswith("error: model: cannot download 'yolo26n.pt'")
    assert "https://github.com/ultralytics/assets/releases/download/" in err
    assert str(ultra_home.cwd / "yolo26n.pt") in err and str(ultra_home.weights_dir / "yolo26n.pt") in err
    assert "place it by hand" in err and "YOLO_OFFLINE is set" in err
    assert not list(ultra_home.cwd.glob("*.pt")) and not list(ultra_home.cwd.glob(".*.part"))


def test_unreachable_host_and_404_fail_fast(server: Server, ultra_home: UltraHome, coco8_yaml: Path) -> None:
    """Both fail within seconds of a failure that needs no network: the probe answers at once (a closed port refuses,
    no PROBE_TIMEOUT_S wait), and a 404 is not retried."""
    port = closed_port()
    answered = median_seconds(lambda: probe(f"{server.url}/anything.pt"), 3)  # a host that answers: the baseline
    start = time.perf_counter()
    assert (reason := probe(f"http://127.0.0.1:{port}/x.pt")) is not None and f"127.0.0.1:{port}" in reason
    assert time.perf_counter() - start <= 10 * answered + 0.5
    assert probe(f"{server.url}/anything.pt") is None

    base = local_failure_seconds(ultra_home, coco8_yaml)
    for url, needle in ((f"http://127.0.0.1:{port}/x.pt", "cannot reach"), (f"{server.url}/missing.pt", "404")):
        recipe = write_recipe(ultra_home.cwd, coco8_yaml, model=url, epochs=1)
        start = time.perf_counter()
        result = cli(ultra_home, "train", str(recipe))
        elapsed = time.perf_counter() - start
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
        assert elapsed <= 2 * base + 3, f"{url}: {elapsed:.1f}s, {base:.1f}s without the network"
        assert "retrying" not in result.stderr
        assert f"cannot download '{url}' from {url}" in result.stderr and needle in result.stderr
        assert str(ultra_home.weights_dir) in result.stderr
        assert not ultra_home.weights_dir.exists() or not any(ultra_home.weights_dir.iterdir())


# -- datasets ----------------------------------------------------------------------------------------------------------


def _zip_coco8(dest: Path, top: str, corrupt_last: bool = False) -> None:
    """COCO8's images and labels as ``top/images/...``, ``top/labels/...``; optionally with the last member's bytes
    damaged, so extraction fails on a CRC error after the other members were written."""
    src = SHARED_DATASETS / "coco8"
    with zipfile.ZipFile(dest, "w") as z:
        for f in sorted(src.rglob("*")):
            if f.is_file() and f.parts[-3] in {"images", "labels"}:
                z.write(f, f"{top}/{f.relative_to(src)}")
    if corrupt_last:
        data = bytearray(dest.read_bytes())
        info = zipfile.ZipFile(dest).infolist()[-1]
        data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 5] ^= 0xFF
        dest.write_bytes(bytes(data))


def _dataset_yaml(folder: Path, name: str, url: str) -> Path:
    names = yaml.safe_load((SHARED_DATASETS / "coco8" / "coco8.yaml").read_text())["names"]
    path = folder / f"{name}.yaml"
    data = {"path": name, "train": "images/train", "val": "images/val", "names": names, "download": url}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


AGREE = """
import json, sys
from ultralytics.data.utils import check_det_dataset
from yolocustom.datasets import resolve_dataset
spec, info = resolve_dataset(sys.argv[1]), check_det_dataset(sys.argv[1], autodownload=False)
ours = {k: [str(p) for p in spec.split_paths(k)] for k in ("train", "val")}
print(json.dumps({"ours": ours, "ultralytics": {k: [info[k]] for k in ("train", "val")},
                  "roots": [str(spec.root), str(info["path"])]}))
"""


def test_dataset_download_then_counted_and_trained(
    server: Server, ultra_home: UltraHome, coco8_yaml: Path, tmp_path: Path
) -> None:
    _zip_coco8(server.root / "tiny8.zip", "tiny8")
    url = f"{server.url}/tiny8.zip"
    data = _dataset_yaml(ultra_home.cwd, "tiny8", url)
    recipe = write_recipe(ultra_home.cwd, data, epochs=1)

    checked = cli(ultra_home, "validate-config", "--check-data", str(recipe))  # offline: says, does not fetch
    assert checked.returncode == 0, checked.stdout
    assert f"the first train (or compute-weights) will download it from {url}" in checked.stdout
    assert str(ultra_home.datasets_dir) in checked.stdout and checked.stdout.endswith(f"{recipe}: ok\n")
    assert server.hits["/tiny8.zip"] == 0 and not ultra_home.datasets_dir.exists()

    counted = cli(ultra_home, "compute-weights", "--data", str(data), "--format", "json", "-q")
    assert counted.returncode == 0, counted.stderr[-3000:]
    report = json.loads(counted.stdout)  # Ultralytics' download logs went to stderr, not into the JSON
    assert server.hits["/tiny8.zip"] == 1 and "Downloading" in counted.stderr
    root = ultra_home.datasets_dir / "tiny8"
    assert (root / "images" / "train").is_dir() and not (ultra_home.datasets_dir / "tiny8.zip").exists()
    from yolocustom.label_counts import count_labels

    spec = resolve_dataset(coco8_yaml)
    expected = count_labels(split_image_paths(spec, "train"), spec.nc, progress=False)
    assert report["counts"] == list(expected.counts) and report["instances"] == expected.instances > 0

    agree = ultra_home.warm.run(["-c", AGREE, str(data)], ultra_home.cwd, ultra_home.env)
    assert agree.returncode == 0, agree.stderr[-3000:]
    where = json.loads(agree.stdout.strip().splitlines()[-1])
    assert where["ours"] == where["ultralytics"] and where["roots"] == [str(root), str(root)]

    trained = cli(ultra_home, "train", str(recipe))
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert server.hits["/tiny8.zip"] == 1  # on disk now: not fetched again
    assert (root / "labels" / "train.cache").is_file()  # the trainer read the very folder compute-weights counted


def test_corrupt_zip_is_a_clear_error_and_leaves_nothing(server: Server, ultra_home: UltraHome) -> None:
    _zip_coco8(server.root / "bad8.zip", "bad8", corrupt_last=True)
    url = f"{server.url}/bad8.zip"
    data = _dataset_yaml(ultra_home.cwd, "bad8", url)
    ultra_home.datasets_dir.mkdir()
    (ultra_home.datasets_dir / "mine").mkdir()  # a user's dataset already there: untouched
    result = cli(ultra_home, "compute-weights", "--data", str(data), "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith(f"error: {data}: downloading the dataset from {url} failed: BadZipFile: Bad CRC-32")
    assert "'bad8'" in err and "'bad8.zip'" in err  # extraction had started; its folder and the archive are gone
    assert sorted(p.name for p in ultra_home.datasets_dir.iterdir()) == ["mine"]


def test_offline_dataset_download_fails_fast(ultra_home: UltraHome) -> None:
    url = f"http://127.0.0.1:{closed_port()}/gone.zip"
    data = _dataset_yaml(ultra_home.cwd, "gone", url)
    local = ultra_home.cwd / "local.yaml"  # data missing, nothing to download: the same command without the network
    local.write_text(f"path: {ultra_home.cwd / 'nowhere'}\ntrain: images/train\nval: images/val\nnames: {{0: a}}\n")
    start = time.perf_counter()
    assert cli(ultra_home, "compute-weights", "--data", str(local), "-q").returncode == 1
    base = time.perf_counter() - start
    start = time.perf_counter()
    result = cli(ultra_home, "compute-weights", "--data", str(data), "-q")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert time.perf_counter() - start <= 2 * base + 3  # the probe refuses at once: no retries, no 30 s timeout
    assert f"cannot be downloaded from {url}: cannot reach" in result.stderr
    assert str(ultra_home.datasets_dir) in result.stderr and not ultra_home.datasets_dir.exists()


def test_download_script_in_a_user_yaml_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipe never makes yolocustom run code: a user YAML's Python ``download:`` is refused, not executed."""
    from yolocustom.resolve import ensure_dataset

    marker = tmp_path / "ran"
    data = tmp_path / "evil.yaml"
    data.write_text(
        yaml.safe_dump(
            {
                "path": "nowhere",
                "train": "images/train",
                "val": "images/val",
                "names": ["a"],
                "download": f"open({str(marker)!r}, 'w').write('x')",
            }  # fmt: skip
        )
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="runs download scripts only from the dataset YAMLs bundled"):
        ensure_dataset(str(data))
    assert not marker.exists()


def test_path_dot_beside_the_yaml_gets_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``path: .`` means the working directory to Ultralytics; when the data sits beside the YAML, say so."""
    folder = tmp_path / "ds"
    for split in ("train", "val"):
        (folder / "images" / split).mkdir(parents=True)
    (folder / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [a]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = resolve_dataset(folder / "data.yaml")
    with pytest.raises(DataError) as e:
        split_image_paths(spec, "train")
    message = str(e.value)
    assert str(elsewhere / "images" / "train") in message
    assert f"did you mean the folder beside the YAML, '{folder}'?" in message and f"set 'path: {folder}'" in message

    monkeypatch.chdir(folder)  # from the dataset's own folder, path: . is right: no hint, no error
    assert resolve_dataset(folder / "data.yaml").path_hint() == ""


# -- resume edges ------------------------------------------------------------------------------------------------------


def _epoch(path: Path) -> tuple[int, bool]:
    from ultralytics.utils.patches import torch_load

    ckpt = torch_load(path, map_location="cpu")
    return int(ckpt["epoch"]), ckpt.get("optimizer") is not None


def test_resume_of_a_finished_run_says_so(finished_run: Path, ultra_home: UltraHome) -> None:
    result = cli(ultra_home, "train", "--resume", str(finished_run / "last.pt"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr and result.stderr == ""
    assert result.stdout == (
        f"Nothing to resume: the run of {finished_run / 'last.pt'} is complete (all 1 epochs trained); "
        f"best.pt: {finished_run / 'best.pt'}\n"
    )


class _Killed(Exception):  # noqa: N818 - stands for the process being killed
    pass


def test_resume_of_a_run_killed_before_its_final_validation(
    tmp_path: Path, coco8_yaml: Path, ultra_home: UltraHome
) -> None:
    def kill_after_last_epoch(trainer: Any) -> None:  # on_fit_epoch_end runs after last.pt is saved
        if trainer.epoch == trainer.epochs - 1:
            raise _Killed

    with pytest.raises(_Killed):
        run_recipe(write_recipe(tmp_path, coco8_yaml, epochs=1), {"on_fit_epoch_end": kill_after_last_epoch})
    weights = tmp_path / "runs" / "run" / "weights"
    assert _epoch(weights / "last.pt") == (0, True)  # every epoch trained, not yet stripped: final_eval never ran

    result = cli(ultra_home, "train", "--resume", str(weights / "last.pt"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "running the closing validation of best.pt that the run missed" in result.stdout
    assert "Final metrics (best.pt): precision(B)=" in result.stdout and "mAP50-95(B)=" in result.stdout
    assert _epoch(weights / "last.pt") == (-1, False) and _epoch(weights / "best.pt") == (-1, False)
    assert "Epoch" not in result.stdout  # validated, not trained again

    again = cli(ultra_home, "train", "--resume", str(weights / "last.pt"))
    assert again.returncode == 0 and again.stdout.startswith("Nothing to resume:")


def test_unknown_checkpoint_name_is_refused_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing .pt that is no official asset name has nothing to download: refused at once, no connection."""
    from yolocustom.errors import UserError
    from yolocustom.resolve import resolve_model

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("resolve_model opened a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="not an official Ultralytics asset name") as e:
        resolve_model("mine.pt")
    assert str(tmp_path / "mine.pt") in str(e.value)
    with pytest.raises(UserError, match="only the bare name 'model: yolo26n.pt' downloads"):
        resolve_model(str(tmp_path / "yolo26n.pt"))
    with pytest.raises(UserError, match="expected a model YAML"):
        resolve_model("yolo26n.onnx")
    assert resolve_model("yolo26n.yaml") == "yolo26n.yaml"  # built by Ultralytics offline: nothing to resolve
