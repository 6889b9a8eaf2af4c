"""``python -m yolocustom`` runs the same CLI as the ``yolocustom`` console script."""

from yolocustom.cli import main

if __name__ == "__main__":
    main()
