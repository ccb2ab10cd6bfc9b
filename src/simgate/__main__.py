from simgate.cli import main

main()
