"""`bpd predict RUN --serve`: one process answers request after request with the files a
one-shot `bpd predict` writes, reports bad requests without ending, and ends at the end
of its stdin (so it cannot outlive the app that opened it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.cli.main import main
from core.runs.folder import RunFolder
from tests.core.runfolder_factory import make_run_folder

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "data" / "images"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from core.models.registry import build_model

    path = make_run_folder(tmp_path_factory.mktemp("serve") / "run", repeats=1, folds=2,
                           init="random")  # fmt: skip
    for i, f in enumerate(RunFolder(path).finished_folds()):
        torch.manual_seed(i)
        f.folder.save_model(build_model("random", dropout=0.1).state_dict())
    return path


class Server:
    def __init__(self, model: Path):
        # the threads of this process, not the free cores: the same sums as main() here
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli.main", "predict", str(model), "--serve"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip

    def answer(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"the server ended: {self.proc.stderr.read()[-2000:]}"
        return json.loads(line)  # every stdout line is an answer

    def ask(self, request) -> list[dict]:
        """Send a request; its progress answers and the final one."""
        text = request if isinstance(request, str) else json.dumps(request)
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answers = [self.answer()]
        while answers[-1]["event"] == "progress":
            answers.append(self.answer())
        return answers


def _rows(path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()


def test_serve_answers_requests_like_bpd_predict_and_ends_with_stdin(run, tmp_path):
    images = [IMAGES / "IM-0115-0001.jpeg", IMAGES / "person1_bacteria_1.jpeg"]
    one_shot = tmp_path / "one-shot.csv"
    assert main(["predict", str(run), *map(str, images), "--out", str(one_shot), "--quiet"]) == 0

    server = Server(run)
    try:
        ready = server.answer()
        assert ready["event"] == "ready" and ready["pid"] == server.proc.pid
        assert ready["n_models"] == 2 and ready["kind"] == "ensemble"

        first = server.ask({"id": 1, "inputs": [str(p) for p in images],
                            "out": str(tmp_path / "a.csv")})  # fmt: skip
        assert [a["event"] for a in first] == ["progress", "progress", "done"]
        assert [a["done"] for a in first[:2]] == [1, 2] and first[0]["id"] == 1
        done = first[-1]
        assert done["exit"] == 0 and done["n_predicted"] == 2
        assert _rows(done["written"]["images"]) == _rows(one_shot)  # same numbers, same file

        # a second request to the same process: the models are not loaded again
        second = server.ask({"id": "b", "inputs": [str(images[1])], "out": str(tmp_path / "b.csv")})
        assert second[-1]["event"] == "done" and second[-1]["id"] == "b"
        assert _rows(tmp_path / "b.csv")[1] == _rows(one_shot)[2]

        # bad requests are answered with what is wrong, and the process goes on
        (bad_field,) = server.ask({"id": 3, "inputs": [str(images[0])], "out": "x.csv", "cams": 1})
        assert bad_field["event"] == "error" and "cams" in bad_field["message"]
        assert bad_field["id"] == 3 and bad_field["exit"] == 2
        (not_json,) = server.ask("{inputs: nope")
        assert not_json["event"] == "error" and "JSON" in not_json["message"]
        missing = tmp_path / "nowhere.png"
        (gone,) = server.ask({"id": 5, "inputs": [str(missing)], "out": str(tmp_path / "c.csv")})
        assert gone["event"] == "error" and str(missing) in gone["message"]
        (exists,) = server.ask({"id": 6, "inputs": [str(images[0])], "out": str(one_shot)})
        assert exists["event"] == "error" and "--force" in exists["message"]

        # one unreadable image: the others are predicted, the problem listed (exit 3)
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"not an image")
        partial = server.ask({"id": 7, "inputs": [str(images[0]), str(broken)],
                              "out": str(tmp_path / "d.csv")})[-1]  # fmt: skip
        assert partial["event"] == "done" and partial["exit"] == 3
        assert partial["n_predicted"] == 1
        assert partial["problems"][0]["file"] == str(broken.resolve())

        server.proc.stdin.close()  # the app went away: the server ends on its own
        assert server.proc.wait(timeout=30) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def test_serve_refuses_images_on_its_command_line(run, tmp_path, capsys):
    image = str(IMAGES / "IM-0115-0001.jpeg")
    assert main(["predict", str(run), image, "--serve"]) == 2
    assert "--serve takes its images" in capsys.readouterr().err
    assert main(["predict", str(run), image]) == 2
    assert "--out FILE is required" in capsys.readouterr().err


def test_a_cold_predict_imports_nothing_it_does_not_use(run, tmp_path):
    """torchvision pulled in torch._dynamo (seconds of a cold start); Grad-CAM, the
    adult-CXR library, training, reports and the table reader (pandas, once pulled in by
    building the `bpd cohort` parser) are not needed to score an image."""
    image, out = IMAGES / "IM-0115-0001.jpeg", tmp_path / "x.csv"
    code = (
        "import sys\nfrom core.cli.main import main\n"
        f"assert main(['predict', {str(run)!r}, {str(image)!r}, '--out', {str(out)!r}, "
        "'--quiet']) == 0\n"
        "unused = ('torchvision', 'torchxrayvision', 'pytorch_grad_cam', 'torch._dynamo', "
        "'sklearn', 'pandas', 'core.training.loop', 'core.evaluation.report', "
        "'core.explain.gradcam')\n"
        "print('imported:', ','.join(m for m in unused if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "imported: "
    assert out.is_file()
