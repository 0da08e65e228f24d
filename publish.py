"""Publish a trained profile-rec model to the Hugging Face Hub.

    python publish.py --repo your-name/profile-rec

Run ``python publish.py --help`` for every option.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

try:
    import profile_rec  # noqa: F401
except ImportError:  # Running from a checkout that is not installed.
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

app = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None
)


@app.command()
def main(
    repo: Annotated[
        str,
        typer.Option(
            "--repo", help="Hub model repo to publish to, e.g. your-name/profile-rec."
        ),
    ],
    artifacts: Annotated[
        Path,
        typer.Option(help="Artifact folder written by 'profile-rec train --out'."),
    ] = Path("artifacts"),
    private: Annotated[
        bool, typer.Option(help="Create the repo as private (if it is new).")
    ] = False,
    commit_message: Annotated[
        str | None, typer.Option(help="Commit message [default: describes the model].")
    ] = None,
    revision: Annotated[
        str,
        typer.Option(
            "--revision", "--branch", help="Branch to publish to (created if needed)."
        ),
    ] = "main",
    create_pr: Annotated[
        bool, typer.Option(help="Open a pull request instead of committing directly.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            help="Hub token with write access [default: HF_TOKEN or your login].",
            show_default=False,
        ),
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            help="Also deploy the Gradio demo to this Space, e.g. your-name/"
            "profile-rec-demo."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Validate, render the card and list the files; contact nobody."
        ),
    ] = False,
) -> None:
    """Validate an artifact folder and publish it with its model card in one commit."""
    from profile_rec.publishing import (
        PublishError,
        check_repo_id,
        publish,
        publish_files,
        validate_artifacts,
    )

    try:
        if dry_run:
            check_repo_id(repo)
            files = publish_files(artifacts, repo, validate_artifacts(artifacts))
            typer.echo(f"Dry run: would upload {len(files)} files to {repo}:")
            for name, data in files.items():
                typer.echo(f"  {name:45s} {len(data):>12,d} bytes")
            if space:
                from profile_rec.space import space_files

                check_repo_id(space)
                app_files = space_files(repo, None if revision == "main" else revision)
                typer.echo(f"\nand {len(app_files)} files to the Space {space}:")
                for name, data in app_files.items():
                    typer.echo(f"  {name:45s} {len(data):>12,d} bytes")
            typer.echo("\nModel card (README.md) as it would be published:\n")
            typer.echo(files["README.md"].decode("utf-8"))
            return
        if space:
            check_repo_id(space)
        result = publish(
            artifacts,
            repo,
            token=token,
            private=private,
            revision=revision,
            create_pr=create_pr,
            commit_message=commit_message,
        )
    except PublishError as exc:
        message = str(exc)
        if token:
            message = message.replace(token, "***")
        typer.echo(f"Error: {message}", err=True)
        raise typer.Exit(1) from None
    if not result.changed:
        typer.echo(
            f"Nothing to publish: {result.repo_url} already holds these files "
            f"at {revision} (commit {result.commit})."
        )
    else:
        typer.echo(f"Published {len(result.files)} files to {result.repo_url}")
        typer.echo(f"Commit: {result.commit}")
        if result.pr_url:
            typer.echo(f"Pull request: {result.pr_url}")
        elif result.commit_url:
            typer.echo(f"Commit URL: {result.commit_url}")
    if space:
        _deploy_space(space, repo, revision, token, private)


def _deploy_space(
    space: str, repo: str, revision: str, token: str | None, private: bool
) -> None:
    from profile_rec.publishing import PublishError, publish_space

    try:
        deployed = publish_space(
            space,
            repo,
            model_revision=None if revision == "main" else revision,
            token=token,
            private=private,
        )
    except PublishError as exc:
        message = str(exc).replace(token, "***") if token else str(exc)
        typer.echo(f"Error: the model is published, but the Space is not: {message}")
        raise typer.Exit(1) from None
    if deployed.refused:
        typer.echo(
            f"The Hub would not create the Space {space}: {deployed.refused}\n"
            "The model is published all the same. Gradio Spaces may need a paid "
            "plan; to run the same demo locally:\n"
            f"  MODEL_REPO={repo} python space_app/app.py\n"
            f"or: profile-rec demo --model {repo}"
        )
        return
    typer.echo(f"Space deployed: {deployed.space_url} (commit {deployed.commit})")


if __name__ == "__main__":
    app()
