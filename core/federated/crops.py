"""Crop boxes in a federation: each site cuts its own images with its own sidecar.

A site names its boxes with its cohort (`--site-crops NAME=FILE` in a simulation, `bpd
federate join --crops FILE` at a real site); its folder's config.json freezes the boxes it
uses, as a run's does (docs/run-folder.md), and its training and scoring cut the images
with them. What crosses the network is the site's crop policy in words and a count
(core.cohort.crop_policy), never a box or an image name. The server writes, in the
federation record, whether the sites prepared their images alike.
"""

from __future__ import annotations

from typing import Any

NOT_SAID = "not said"  # a site of an older version sends no crop policy


def site_crops(run) -> tuple[str, int]:
    """(method, number of boxes) of a site's folder (core.runs.folder.RunFolder)."""
    from core.cohort.crop_policy import crop_policy

    policy = crop_policy(run.crops(run.config()))
    return str(policy["method"]), int(policy.get("boxes", 0))


def crops_note(sites: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The federation record's `crops`: each site's method and whether they agree.
    `sites`: the record's sites, each with "crops" (method) and "crop-boxes"."""
    methods = {name: str(s.get("crops", NOT_SAID)) for name, s in sorted(sites.items())}
    same = len(set(methods.values())) <= 1
    described = ", ".join(f"{name}: {_words(m, sites[name].get('crop-boxes'))}"
                          for name, m in methods.items())  # fmt: skip
    if same:
        note = f"every site prepared its images alike ({described})"
    else:
        note = (f"the sites prepared their images differently ({described}): the "
                "federated model learnt from chests cut out at some sites and whole "
                "radiographs (or other boxes) at others, and each site's scores are on its "
                "own preparation")  # fmt: skip
    return {"same": same, "sites": methods, "note": note}


def _words(method: str, boxes: Any) -> str:
    if method == "none":
        return "whole images"
    if method == NOT_SAID:
        return "not said"
    return f"crop boxes, {method}" + (f", {int(boxes)} images" if boxes else "")
