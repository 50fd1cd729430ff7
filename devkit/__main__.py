"""`python -m devkit demo|devhub|kubeapi`: the dev kit's commands, run from a checkout (they are not in the wheel)."""

from __future__ import annotations

import click

from devkit.demo import demo
from devkit.devhub.cli import devhub
from devkit.kubeapi.cli import kubeapi


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Modelship's dev kit: the local demo and devhub, the GitHub simulator."""


main.add_command(demo)
main.add_command(devhub)
main.add_command(kubeapi)

if __name__ == "__main__":
    main(prog_name="python -m devkit")
