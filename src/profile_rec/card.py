"""Render the model card (the artifact folder's README.md) from ``model_card/``."""

from __future__ import annotations

from importlib import resources
from typing import Any

DATASET_LABELS = {"ml-1m": "MovieLens 1M", "ml-100k": "MovieLens 100K"}
DATASET_IDS = {"ml-1m": "movielens-1m", "ml-100k": "movielens-100k"}
DATASET_YEARS = {"ml-1m": "2000 to 2003", "ml-100k": "1997 and 1998"}


def template_text() -> str:
    return (
        resources.files("profile_rec.model_card")
        .joinpath("template.md")
        .read_text(encoding="utf-8")
    )


def _share_list(shares: dict[str, float], n: int = 2) -> str:
    items = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ", ".join(f"{name} ({share:.0%})" for name, share in items if share > 0)


def _results_markdown(metrics: dict[str, Any], *, refitted: bool = False) -> str:
    training = metrics.get("training", {})
    lines = []
    if "evaluation" in metrics:
        from .evaluation import results_markdown

        lines += [results_markdown(metrics["evaluation"]), "", "**Training**", ""]
    lines += ["| measure | value |", "|---|---|"]
    lines.append(f"| epochs run | {training.get('epochs_run', '-')} |")
    lines.append(
        f"| training MSE, last epoch | {training.get('loss', float('nan')):.4f} |"
    )
    lines.append(
        f"| training MAE, last epoch | {training.get('mae', float('nan')):.4f} |"
    )
    if "val_rmse" in training:
        best = training.get("best_epoch", "-")
        when = f"best epoch ({best})" + (", before the bias refit" if refitted else "")
        lines.append(f"| validation RMSE, {when} | {training['val_rmse']:.4f} |")
        lines.append(f"| validation MAE, {when} | {training['val_mae']:.4f} |")
    return "\n".join(lines)


def eval_results(config: dict[str, Any], metrics: dict[str, Any]) -> list:
    """The measured metrics as model-index entries, so the Hub shows them.

    The evaluation on held-out users when the model has one, else the rating error
    on the ratings held out for early stopping.
    """
    from huggingface_hub import EvalResult

    dataset = config["dataset"]
    common = {
        "dataset_type": DATASET_IDS.get(dataset["name"], dataset["name"]),
        "dataset_name": DATASET_LABELS.get(dataset["name"], dataset["name"]),
    }
    if "evaluation" in metrics:
        from .evaluation import eval_results as evaluation_results

        return evaluation_results(metrics["evaluation"])
    training = metrics.get("training", {})
    results = []
    for key, name in (("val_rmse", "RMSE"), ("val_mae", "MAE")):
        if key in training:
            results.append(
                EvalResult(
                    task_type="tabular-regression",
                    task_name="Rating prediction (users held out of training)",
                    metric_type=name.lower(),
                    metric_name=f"Validation {name}",
                    metric_value=round(float(training[key]), 4),
                    **common,
                )
            )
    return results


def render_card(
    config: dict[str, Any],
    metrics: dict[str, Any],
    *,
    location: str,
    on_hub: bool = False,
) -> str:
    """The model card for a trained model, as Markdown with YAML metadata.

    ``location`` (a Hub repo id when ``on_hub``, else a local folder) fills in the
    usage examples.
    """
    from huggingface_hub import ModelCard, ModelCardData

    from .config import describe_ranking, ranking_of
    from .recommender import EVALUATION_PLOT_FILE, MODEL_FILE, PIPELINE_FILE, PLOT_FILE

    dataset = config["dataset"]
    # Settings added over time, as models saved before them were trained.
    training = {
        "genres_from_first": 0,
        "profile_bias": True,
        "genre_affinity": False,
        "refit_movie_bias": False,
        **config["training"],
    }
    label = DATASET_LABELS.get(dataset["name"], dataset["name"])
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="keras",
        tags=["recommender-system", "cold-start", "movielens", "keras", "tabular"],
        datasets=[DATASET_IDS.get(dataset["name"], dataset["name"])],
        model_name=location.rstrip("/").split("/")[-1] if on_hub else "profile-rec",
        eval_results=eval_results(config, metrics),
    )
    profiles = [
        {
            "id": p["id"],
            "size": p["size"],
            "women": f"{p['female_share']:.0%}",
            "ages": _share_list(p["ages"]),
            "occupations": _share_list(p["top_occupations"]),
            "genres": _share_list(p["genre_share"], 3),
        }
        for p in config["profiles"]
    ]
    rows = [
        ("profiles", config["n_profiles"]),
        ("embedding size", training["embedding_dim"]),
        ("biases", _biases(training)),
        ("genre affinity term", "yes" if training["genre_affinity"] else "no"),
        (
            "favourite genres from",
            f"first {training['genres_from_first']} ratings"
            if training["genres_from_first"]
            else "all ratings",
        ),
        ("L2 penalty", training["l2"]),
        ("learning rate", training["learning_rate"]),
        ("epochs (most)", training["epochs"]),
        ("batch size", training["batch_size"]),
        (
            "users held out for early stopping",
            f"{float(training['validation_fraction']):.0%}",
        ),
        ("ranking", ranking_of(training)),
        ("seed", training["seed"]),
    ]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(config["versions"].items()))
    card = ModelCard.from_template(
        card_data,
        template_str=template_text(),
        title="profile-rec: cold-start movie recommendations from profiles",
        n_profiles=config["n_profiles"],
        dataset_label=label,
        dataset=dataset,
        training=training,
        training_rows=rows,
        ranking=describe_ranking(training),
        preset=config.get("preset", "default"),
        versions=versions,
        unknown_movie=config["unknown_movie"][0].lower() + config["unknown_movie"][1:],
        profiles=profiles,
        results=_results_markdown(
            metrics, refitted=training["use_bias"] and training["refit_movie_bias"]
        ),
        evaluation_plot=EVALUATION_PLOT_FILE
        if "new_user" in metrics.get("evaluation", {})
        else None,
        last_year=config["last_year"],
        variety=metrics.get("recommendations"),
        collected=DATASET_YEARS.get(dataset["name"], "the years the ratings cover"),
        location=location,
        on_hub=on_hub,
        files={"model": MODEL_FILE, "pipeline": PIPELINE_FILE, "plot": PLOT_FILE},
    )
    return str(card).rstrip("\n") + "\n"


def _biases(training: dict[str, Any]) -> str:
    if not training["use_bias"]:
        return "no"
    return "per profile and per movie" if training["profile_bias"] else "per movie"
