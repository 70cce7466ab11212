"""``python -m geometry_probe``: the ``geoprobe`` command, so ``torchrun -m geometry_probe analyze ...`` runs."""

from geometry_probe.cli.main import main

if __name__ == "__main__":
    main()
