from frs_cli.cli import main

main()
