"""The trainings a federation runs side by side, one round at a time.

- `fed-f<k>`: every site trains on its fold-k training patients (patient-level folds
  inside each site) and is scored on its fold-k test patients: per-site held-out AUROC.
- `loso-<site>`: every other site trains on all its patients; the left-out site is scored
  fold by fold with its BatchNorm re-estimated on its own fold-training images.
Names stay short and free of paths or patient ids: they cross the network.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    name: str
    participants: tuple[str, ...]  # site names that train
    fold: int | None = None  # fed jobs: the fold index inside every site
    left_out: str | None = None  # loso jobs: the site that does not train


def fed_job_name(k: int) -> str:
    return f"fed-f{k}"


def loso_job_name(site: str) -> str:
    return f"loso-{site}"


def plan_jobs(sites: list[str], n_folds: int, loso: bool) -> list[Job]:
    jobs = [Job(fed_job_name(k), tuple(sites), fold=k) for k in range(n_folds)]
    if loso and len(sites) >= 2:
        for s in sites:
            others = tuple(x for x in sites if x != s)
            jobs.append(Job(loso_job_name(s), others, left_out=s))
    return jobs


def parse_job(name: str) -> tuple[str, str]:
    """("fed", "<k>") or ("loso", "<site>")."""
    kind, _, rest = name.partition("-")
    if kind == "fed" and rest.startswith("f") and rest[1:].isdigit():
        return "fed", rest[1:]
    if kind == "loso" and rest:
        return "loso", rest
    raise ValueError(f"unknown federated job {name!r}")
