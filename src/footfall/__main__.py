from footfall.cli import main

main()
