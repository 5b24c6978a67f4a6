from frs_cli.entry import main

main()
