"""`bpd predict RUN --serve`: the model(s) loaded once, then one prediction per request.

A cold `bpd predict` pays its imports and model loading for every click of the app's
Predict page; this process pays them once. Protocol, one JSON object per line:

stdin, a request: {"id": any, "inputs": [TABLE or IMAGE, ...], "out": CSV, and any
  option of `bpd predict` by its name ("cam", "cam_scale", "opacity", "images_root",
  "patient_col", "image_col", "image_pattern", "outcome", "positive", "negative",
  "negative_rest", "sheet", "crops", "autobox", "force")}; an option left out has the
  value given on the --serve command line (or its default).
stdout, the answers:
  {"event": "ready", "model", "kind", "threshold", "n_models", "pid"} once, the models
   loaded and each run once (warm);
  {"event": "progress", "id", "done", "total"} per image;
  {"event": "done", "id", "exit": 0 or 3 (partial), "written": {kind: path},
   "n_images", "n_predicted", "problems": [{row, patient_id, file, message}], "seconds"};
  {"event": "error", "id", "message", "exit": 2 bad input / 1 internal} when nothing
   was written; the process goes on with the next request.
The files written are exactly those of `bpd predict` with the same arguments. The
process ends (exit 0) at the end of stdin, so it never outlives the app that opened it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from typing import Any, TextIO

from core.errors import BPDError

# Request fields: the `bpd predict` option each sets, and the JSON types it accepts.
_STR, _LIST = (str,), (list,)
FIELDS: dict[str, tuple[type, ...]] = {
    "inputs": _LIST, "out": _STR, "cam": _STR, "cam_scale": _STR, "opacity": (int, float),
    "images_root": _STR, "patient_col": _STR, "image_col": _STR, "image_pattern": _STR,
    "outcome": _STR, "positive": _LIST, "negative": _LIST, "negative_rest": (bool,),
    "sheet": _STR, "crops": _STR, "autobox": (bool,), "force": (bool,),
}  # fmt: skip
CAM_SCALES = ("shared", "image")


def request_args(base: argparse.Namespace, request: Any) -> argparse.Namespace:
    """The `bpd predict` arguments of one request: the --serve command line's, with the
    request's fields in place. InputError names a field that is unknown or mistyped."""
    from core.errors import InputError

    if not isinstance(request, dict):
        raise InputError(f"a request is a JSON object, not {type(request).__name__}")
    unknown = sorted(set(request) - set(FIELDS) - {"id"})
    if unknown:
        raise InputError(f"unknown request field(s) {', '.join(unknown)}; "
                         f"known: id, {', '.join(FIELDS)}")  # fmt: skip
    args = argparse.Namespace(**vars(base))
    args.inputs, args.out = [], None
    for name, value in request.items():
        if name == "id":
            continue
        types = FIELDS[name]
        optional = name not in ("inputs", "out")
        if not (isinstance(value, types) or (optional and value is None)) or (
            isinstance(value, bool) and bool not in types
        ):
            raise InputError(f"request field '{name}' must be {_type_names(types)}, "
                             f"not {json.dumps(value)[:80]}")  # fmt: skip
        if types is _LIST and value is not None and not all(isinstance(v, str) for v in value):
            raise InputError(f"request field '{name}' must be a list of strings")
        setattr(args, name, value)
    if args.cam_scale not in CAM_SCALES:
        raise InputError(
            f"cam_scale must be one of {', '.join(CAM_SCALES)}, not {args.cam_scale!r}"
        )
    return args


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", bool: "true or false", int: "a number"}
    return " or ".join(dict.fromkeys(names.get(t, "a number") for t in types))


class _Answers:
    """JSON lines on the process's real stdout; everything else printed while a request
    runs goes to stderr, so the protocol stream holds nothing but answers."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def send(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self.stream.flush()


def serve(base: argparse.Namespace, stdin: TextIO | None = None) -> int:
    """Load the model(s), answer requests until stdin ends. Returns the exit code."""
    from core.errors import InputError
    from core.predict.models import load_predictor

    if base.inputs or base.out:
        raise InputError("--serve takes its images and --out from the requests on stdin; "
                         "give only the model folder (and default options)")  # fmt: skip
    if base.cam_scale not in CAM_SCALES:
        raise InputError(f"--cam-scale must be one of {', '.join(CAM_SCALES)}")
    answers = _Answers(sys.stdout)
    with contextlib.redirect_stdout(sys.stderr):
        predictor = load_predictor(base.model)
        predictor.keep_models_loaded()
        _warm_up(predictor)
    answers.send("ready", model=predictor.description, kind=predictor.kind,
                 threshold=predictor.threshold, n_models=len(predictor.models),
                 pid=os.getpid())  # fmt: skip
    for line in stdin or sys.stdin:
        if line.strip():
            with contextlib.redirect_stdout(sys.stderr):
                _answer(line, base, predictor, answers)
    return 0


def _warm_up(predictor) -> None:
    """Load every model and run each once on a blank image of the run's size, before
    "ready": the first forward pass also reads the mmap'd weights and sets up the
    convolution kernels, work the page's first click would otherwise wait for."""
    import torch

    from core.predict.threads import free_core_threads

    side = predictor.preprocess.resolution
    with free_core_threads():
        predictor.probabilities(torch.zeros(1, 1, side, side))


def _answer(line: str, base: argparse.Namespace, predictor, answers: _Answers) -> None:
    from core.cli.predict_cmd import PARTIAL_EXIT, check_request, predict_request
    from core.errors import InputError
    from core.predict.threads import free_core_threads

    rid = None
    started = time.perf_counter()
    try:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"a request must be one line of JSON ({exc})") from None
        rid = request.get("id") if isinstance(request, dict) else None
        args = request_args(base, request)
        check_request(args)

        def progress(done: int, total: int) -> None:
            answers.send("progress", id=rid, done=done, total=total)

        with free_core_threads():  # on busy cores two threads wait at every barrier
            result, written = predict_request(args, predictor, on_progress=progress)
    except (BPDError, OSError) as exc:  # what `bpd predict` reports as exit 2
        answers.send("error", id=rid, message=_message(exc), exit=2)
        return
    except Exception as exc:  # a bug must not end the session: say it, serve the next
        traceback.print_exc(file=sys.stderr)
        answers.send("error", id=rid, message=f"internal error: {exc!r}", exit=1)
        return
    problems = [{"row": p.row, "patient_id": p.patient_id, "file": p.file, "message": p.message}
                for p in result.problems]  # fmt: skip
    answers.send(
        "done",
        id=rid,
        exit=PARTIAL_EXIT if result.partial else 0,
        written={k: str(v) for k, v in written.items()},
        n_images=len(result.images),
        n_predicted=sum(1 for r in result.images if r["prob"] != ""),
        problems=problems,
        seconds=round(time.perf_counter() - started, 3),
    )


def _message(exc: Exception) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, BPDError):
        from core.cli.main import describe_os_error

        return describe_os_error(exc)
    return str(exc)
