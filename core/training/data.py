"""The arrays a fold trains on: preprocessed pixels and who each image belongs to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.cohort.preprocess import to_model_input


@dataclass
class TrainingData:
    pixels: np.ndarray  # uint16 [N_img, R, R] (core.cohort.preprocess output)
    image_patient: np.ndarray  # int64 [N_img]: index into labels / patient_ids
    image_rank: np.ndarray  # int64 [N_img]: 0 = the patient's first image
    labels: np.ndarray  # int64 [N_patients], 1 = positive outcome
    patient_ids: list[str]

    def __post_init__(self) -> None:
        self.image_patient = np.asarray(self.image_patient, dtype=np.int64)
        self.image_rank = np.asarray(self.image_rank, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.pixels) != len(self.image_patient) or len(self.image_rank) != len(self.pixels):
            raise ValueError("pixels, image_patient and image_rank must have one entry per image")
        if len(self.patient_ids) != len(self.labels):
            raise ValueError("patient_ids and labels must have one entry per patient")

    @classmethod
    def from_prepared(cls, prepared) -> TrainingData:
        """From core.cohort.prepare.PreparedCohort."""
        ids = [p.patient_id for p in prepared.cohort.patients]
        return cls(
            prepared.pixels, prepared.image_patient, prepared.image_rank, prepared.labels, ids
        )

    @property
    def n_images(self) -> int:
        return len(self.pixels)

    @property
    def resolution(self) -> int:
        return int(self.pixels.shape[-1])

    def model_input(self, idx: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
        """Images idx -> float32 [B, 1, R, R] in [-1024, 1024], on `device`.

        For a GPU the uint16 batch (half the bytes of float32) goes through pinned
        memory with a non-blocking copy and is converted on the GPU."""
        raw = torch.from_numpy(self.pixels[np.asarray(idx)])
        if device is not None and device.type == "cuda":
            raw = raw.pin_memory().to(device, non_blocking=True)
        x = to_model_input(raw)[:, None]
        return x if device is None else x.to(device)
