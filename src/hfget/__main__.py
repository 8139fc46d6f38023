from hfget.cli import main

main()
