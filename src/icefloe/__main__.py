from icefloe.cli import main

main()
