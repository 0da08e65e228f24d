"""The profile-rec demo: movie recommendations for someone we know only a little about.

A visitor says their age bracket, gender, occupation and favourite genres; the app
finds the profile (a group of MovieLens users) that fits them best and lists the
movies the model expects that group to watch and like, with the profile explained
in words and as a chart.

The model comes from the ``MODEL_REPO`` environment variable (a Hub repo id, or a
local artifact folder), at ``MODEL_REVISION`` if set, and is loaded once at start-up.
Run it locally with ``MODEL_REPO=artifacts python space_app/app.py`` or
``profile-rec demo --model artifacts``. The page also answers API calls:
``gradio_client.Client(url).predict(..., api_name="/recommend")``.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import html  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from profile_rec.config import ranking_of  # noqa: E402
from profile_rec.data import AGE_BUCKETS, GENRES, OCCUPATIONS  # noqa: E402
from profile_rec.profiles import InvalidPersonError  # noqa: E402
from profile_rec.recommender import ProfileRecommender  # noqa: E402

logger = logging.getLogger(__name__)

MODEL_REPO_VAR = "MODEL_REPO"
MODEL_REVISION_VAR = "MODEL_REVISION"
GENDER_WORDS = {"F": "Female", "M": "Male"}
MAX_K = 50
# A genre counts as a leaning of a profile from this many points above all users.
MIN_LEAD = 0.02
DEFAULT_PERSON = ("25-34", "Female", "programmer", ["Comedy", "Romance"], 10)
EXAMPLES = [
    list(DEFAULT_PERSON),
    ["Under 18", "Male", "K-12 student", ["Animation", "Children's", "Adventure"], 10],
    ["56+", "Female", "retired", ["Drama", "Mystery"], 10],
    ["35-44", "Male", "technician/engineer", ["Sci-Fi", "Thriller", "Action"], 5],
]
TABLE_COLUMNS = ["rank", "title", "year", "genres", "predicted rating"]
# At most CONCURRENCY_LIMIT calls run at once and QUEUE_SIZE more wait; callers
# beyond that are told the queue is full instead of piling up without bound.
CONCURRENCY_LIMIT = 8
QUEUE_SIZE = 256


@dataclass
class LoadedModel:
    """What start-up produced: a model, or the reason there is none."""

    source: str
    revision: str | None
    recommender: ProfileRecommender | None = None
    #: Markdown for the page: what went wrong and what to check.
    error: str | None = None
    #: The failure itself, e.g. "RepositoryNotFoundError: 404 ...".
    cause: str | None = None
    seconds: float = 0.0


def load_model(source: str | None, revision: str | None = None) -> LoadedModel:
    """Load the model once; on failure keep a message that says what to check.

    Never raises: whatever goes wrong, the page must still come up and explain it.
    """
    if not source:
        return LoadedModel(
            "",
            revision,
            error=(
                f"No model configured: set the {MODEL_REPO_VAR} variable to the "
                "model's Hub repo id (e.g. `user/profile-rec`) or to a local "
                "artifact folder, then restart."
            ),
        )
    started = time.perf_counter()
    try:
        recommender = ProfileRecommender.from_pretrained(source, revision=revision)
    except Exception as exc:  # noqa: BLE001 - any failure becomes the page's message
        # Not found, private without a token, network down, incomplete artifacts:
        # log it for the Space's logs and tell the visitor what to check.
        cause = f"{type(exc).__name__}: {exc}"
        logger.error("Could not load the model from %r: %s", source, cause)
        logger.debug("Details:", exc_info=True)
        at = f" at revision `{revision}`" if revision else ""
        return LoadedModel(
            source,
            revision,
            cause=cause,
            error=(
                f"The model could not be loaded from `{source}`{at}: "
                f"{cause}\n\nCheck that {MODEL_REPO_VAR} names "
                "an existing model repo (or a local artifact folder), that "
                f"{MODEL_REVISION_VAR} (if set) is a branch, tag or commit in it, "
                "and, for a private repo, that an `HF_TOKEN` secret with read "
                "access is set. Then restart."
            ),
            seconds=time.perf_counter() - started,
        )
    return LoadedModel(
        source, revision, recommender, seconds=time.perf_counter() - started
    )


# -- what the page shows -----------------------------------------------------------


def _shares(shares: dict[str, float], n: int) -> str:
    top = sorted(shares.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{name} ({share:.0%})" for name, share in top if share > 0)


def average_genre_share(profiles: list[dict[str, Any]]) -> dict[str, float]:
    """Share of all training users naming each genre a favourite."""
    total = sum(p["size"] for p in profiles)
    genres = profiles[0]["genre_share"] if profiles else {}
    return {
        genre: sum(p["size"] * p["genre_share"][genre] for p in profiles) / total
        for genre in genres
    }


def describe_profile(config: dict[str, Any], profile: int) -> str:
    """Markdown that tells a visitor which profile they got and who is in it."""
    profiles = config["profiles"]
    p = profiles[profile]
    total = sum(q["size"] for q in profiles)
    average = average_genre_share(profiles)
    women = p["female_share"]
    # The (up to) three genres with the largest lead over all users, as charted.
    leads = {g: share - average[g] for g, share in p["genre_share"].items()}
    leaning = [
        genre
        for genre, lead in sorted(leads.items(), key=lambda kv: -kv[1])
        if lead >= MIN_LEAD
    ][:3]
    lines = [
        "### Your profile",
        f"You were matched with **profile {profile}** (one of {len(profiles)}): "
        f"**{p['size']:,} MovieLens users** ({p['size'] / total:.0%} of the "
        f"{total:,} the model learned from) whose answers look most like yours. "
        "The movies above are the ones the model expects this group to watch "
        "and rate highly.",
        "",
        f"- **Ages:** mostly {_shares(p['ages'], 3)}",
        f"- **Gender:** {women:.0%} women, {1 - women:.0%} men",
        f"- **Occupations:** {_shares(p['top_occupations'], 3)}",
        f"- **Favourite genres** (share of members naming each): "
        f"{_shares(p['genre_share'], 3)}",
    ]
    if leaning:
        lines.append(
            "- **More than the average user, they like:** "
            + ", ".join(
                f"{g} ({p['genre_share'][g]:.0%} vs {average[g]:.0%})" for g in leaning
            )
        )
    return "\n".join(lines)


def genre_leanings(config: dict[str, Any], profile: int) -> pd.DataFrame:
    """Per genre: how many more points of the profile than of all users like it."""
    p = config["profiles"][profile]
    average = average_genre_share(config["profiles"])
    rows = [
        {
            "genre": genre,
            "difference": round(100 * (share - average[genre]), 1),
            "this profile (%)": round(100 * share, 1),
            "all users (%)": round(100 * average[genre], 1),
            "leaning": "more than average"
            if share >= average[genre]
            else "less than average",
        }
        for genre, share in p["genre_share"].items()
    ]
    return pd.DataFrame(rows)


def results_table(result: pd.DataFrame) -> pd.DataFrame:
    """The visible table: rank, title, year, genres and predicted rating."""
    return pd.DataFrame(
        {
            "rank": range(1, len(result) + 1),
            "title": result["title"].tolist(),
            # object, so that a missing year stays None instead of making every
            # year a float
            "year": pd.Series(
                [None if pd.isna(y) else int(y) for y in result["year"]], dtype=object
            ),
            "genres": [", ".join(g) for g in result["genres"]],
            "predicted rating": [
                round(float(r), 2) for r in result["predicted_rating"]
            ],
        },
        columns=TABLE_COLUMNS,
    )


# -- the page ------------------------------------------------------------------------


def _input_error(message: str, *, title: str) -> gr.Error:
    """A message for the visitor (a modal) or API caller, not a server traceback."""
    # The modal renders HTML, and the message may quote what the caller sent.
    return gr.Error(
        html.escape(message, quote=False), title=title, print_exception=False
    )


def _check_count(k: Any) -> int:
    """The number of recommendations as an int, or a gr.Error saying what is wrong."""
    # The endpoint takes raw JSON (see build_demo), so k may be anything.
    number = isinstance(k, (int, float)) and not isinstance(k, bool)
    whole = number and math.isfinite(k) and k == int(k)
    if not whole or not 1 <= k <= MAX_K:
        raise _input_error(
            f"Number of recommendations must be a whole number from 1 to {MAX_K}, "
            f"got {k!r}.",
            title="Invalid number",
        )
    return int(k)


def make_recommend(loaded: LoadedModel):
    """The ``recommend`` endpoint, bound to the model loaded at start-up."""

    def recommend(
        age: str, gender: str, occupation: str, genres: list[str] | None, k: int
    ) -> tuple[pd.DataFrame, str, pd.DataFrame]:
        """Recommend movies for a person.

        Args:
            age: Age bracket, e.g. "25-34".
            gender: "Female" or "Male".
            occupation: Occupation, e.g. "programmer".
            genres: Favourite genres, at least one, e.g. ["Comedy", "Romance"].
            k: How many movies, 1 to 50.

        Returns:
            The table (rank, title, year, genres, predicted rating), the profile
            explained in Markdown, and the profile's genre leanings versus the
            average user.
        """
        model = loaded.recommender
        if model is None:
            raise _input_error(loaded.error, title="The model is not available")
        if not genres:
            raise _input_error(
                "Choose at least one favourite genre, then ask again.",
                title="No genre chosen",
            )
        count = _check_count(k)
        try:
            result = model.recommend(
                age=age, gender=gender, occupation=occupation, genres=genres, k=count
            )
        except InvalidPersonError as exc:
            raise _input_error(str(exc), title="Unknown value") from None
        profile = int(result["profile"].iloc[0])
        return (
            results_table(result),
            describe_profile(model.config, profile),
            genre_leanings(model.config, profile),
        )

    return recommend


def build_demo(loaded: LoadedModel) -> gr.Blocks:
    """The page: inputs, results table, profile explanation and chart, examples."""
    model = loaded.recommender
    vocabulary = model.config["vocabulary"] if model is not None else None
    age_labels = vocabulary["age_labels"] if vocabulary else list(AGE_BUCKETS.values())
    genders = (
        [GENDER_WORDS[g] for g in vocabulary["genders"]]
        if vocabulary
        else list(GENDER_WORDS.values())
    )
    occupations = vocabulary["occupations"] if vocabulary else list(OCCUPATIONS)
    genres = vocabulary["genres"] if vocabulary else list(GENRES)
    recommend = make_recommend(loaded)

    with gr.Blocks(title="profile-rec: movies for new people") as demo:
        gr.Markdown(
            "# Movies for someone new\n"
            "Tell us a little about yourself. The model matches you with the group "
            "of MovieLens users most like you and suggests what they loved."
        )
        if loaded.error:
            gr.Markdown(f"## ⚠️ The model is not available\n\n{loaded.error}")
        with gr.Row():
            with gr.Column(scale=1):
                age = gr.Dropdown(
                    age_labels, value=DEFAULT_PERSON[0], label="Age", elem_id="age"
                )
                gender = gr.Radio(
                    genders, value=DEFAULT_PERSON[1], label="Gender", elem_id="gender"
                )
                occupation = gr.Dropdown(
                    occupations,
                    value=DEFAULT_PERSON[2],
                    label="Occupation",
                    elem_id="occupation",
                )
                favourite = gr.Dropdown(
                    genres,
                    value=DEFAULT_PERSON[3],
                    multiselect=True,
                    label="Favourite genres",
                    info="Pick one or more.",
                    elem_id="genres",
                )
                k = gr.Slider(
                    1,
                    MAX_K,
                    value=DEFAULT_PERSON[4],
                    step=1,
                    precision=0,
                    label="Number of recommendations",
                    elem_id="count",
                )
                button = gr.Button("Recommend", variant="primary")
            with gr.Column(scale=2):
                table = gr.Dataframe(
                    headers=TABLE_COLUMNS,
                    datatype=["number", "str", "number", "str", "number"],
                    column_widths=["8%", "42%", "10%", "30%", "10%"],
                    interactive=False,
                    wrap=True,
                    label="Recommended movies",
                    elem_id="results",
                )
        with gr.Row():
            explanation = gr.Markdown(label="Your profile", elem_id="profile")
            chart = gr.BarPlot(
                x="genre",
                y="difference",
                color="leaning",
                color_map={
                    "more than average": "#d9622b",
                    "less than average": "#6b8fb3",
                },
                x_title="genre",
                y_title="difference (points)",
                color_title="this profile likes it",
                tooltip=["genre", "this profile (%)", "all users (%)"],
                x_label_angle=-45,
                sort=list(genres),
                label="Genre leanings: this profile vs the average user",
                elem_id="leanings",
                caption=(
                    "Share of this profile's members who name a genre as a "
                    "favourite, minus the share of all users, in percentage points."
                ),
            )
        inputs = [age, gender, occupation, favourite, k]
        outputs = [table, explanation, chart]
        # preprocess=False hands the function the raw values, so that it checks
        # them itself and every bad API call gets the same plain-words message.
        # The click event is registered first so it gets the name "recommend".
        button.click(
            recommend,
            inputs,
            outputs,
            api_name="recommend",
            preprocess=False,
            concurrency_limit=CONCURRENCY_LIMIT,
        )
        gr.Examples(
            EXAMPLES,
            inputs=inputs,
            outputs=outputs,
            fn=recommend,
            run_on_click=True,
            cache_examples=False,
            preprocess=False,
            label="Try these people",
        )
        if model is not None:
            demo.load(
                recommend,
                inputs,
                outputs,
                preprocess=False,
                api_visibility="private",
                concurrency_limit=CONCURRENCY_LIMIT,
            )
        gr.Markdown(_footer(loaded))
    demo.queue(max_size=QUEUE_SIZE)
    return demo


def _footer(loaded: LoadedModel) -> str:
    at = f" at `{loaded.revision}`" if loaded.revision else ""
    text = f"Model: `{loaded.source or 'not set'}`{at}."
    model = loaded.recommender
    if model is not None:
        text += " " + _ranking_note(model.config["training"])
    return text


def _ranking_note(training: dict[str, Any]) -> str:
    """How the list is ordered, in a visitor's words."""
    ranking = ranking_of(training)
    if ranking == "likes":
        return (
            "Movies are ordered by how many people watch them times the chance "
            f"that this group rates them above {training['like_threshold']:g}; "
            "the predicted rating (1-5) is the model's guess for the group."
        )
    note = "Movies are ordered by predicted rating (1-5)"
    if ranking == "shrunk_rating":
        note += (
            ", pulled toward the average rating when few of the group's members "
            "rated the movie"
        )
    return note + "."


def launch(
    app: gr.Blocks, *, server_name: str | None = None, server_port: int | None = None
) -> None:
    """Serve ``app`` until interrupted, printing how long start-up took.

    ``server_name``/``server_port`` default to Gradio's ``GRADIO_SERVER_NAME`` and
    ``GRADIO_SERVER_PORT`` (127.0.0.1:7860 locally; a Space sets its own).
    """
    app.launch(
        server_name=server_name,
        server_port=server_port,
        prevent_thread_lock=True,
        quiet=True,
    )
    # CPU time too: on a busy machine the wall time says more about the neighbours.
    print(
        f"profile-rec demo ready in {time.perf_counter() - _STARTED:.1f} s "
        f"({time.process_time():.1f} s CPU; model loaded in {LOADED.seconds:.1f} s)"
        f" at {app.local_url}",
        flush=True,
    )
    app.block_thread()


LOADED = load_model(
    os.environ.get(MODEL_REPO_VAR, "").strip(),
    os.environ.get(MODEL_REVISION_VAR, "").strip() or None,
)
demo = build_demo(LOADED)

if __name__ == "__main__":
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    launch(demo)
