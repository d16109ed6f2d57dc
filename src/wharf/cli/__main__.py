from wharf.cli.entry import main

main()
