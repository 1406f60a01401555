"""CHILI benchmark (Friis-Jensen et al. 2024) on nanosolve's ChiliDataset: tasks, metrics,
naive baselines and models."""

from nanosolve.models.chili_bench.baselines import evaluate_baselines, fit_baseline, predict_baseline
from nanosolve.models.chili_bench.gnns import MODELS, ChiliModel, make_model, task_loss, to_prediction
from nanosolve.models.chili_bench.metrics import mae, masked_mae, mse, position_mae, score, weighted_f1
from nanosolve.models.chili_bench.tasks import (
                                                GENERATION_TASKS,
                                                PROPERTY_TASKS,
                                                TASKS,
                                                Task,
                                                build_inputs,
                                                build_targets,
                                                get_task,
)

__all__ = ["Task", "TASKS", "PROPERTY_TASKS", "GENERATION_TASKS", "get_task", "build_inputs", "build_targets",
           "weighted_f1", "mae", "position_mae", "mse", "masked_mae", "score", "evaluate_baselines", "fit_baseline",
           "predict_baseline", "MODELS", "ChiliModel", "make_model", "task_loss", "to_prediction"]
