from nexus.cli.main import main

if __name__ == "__main__":  # `python -m nexus`; importing it runs nothing
    raise SystemExit(main())
