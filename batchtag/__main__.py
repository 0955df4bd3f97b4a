from batchtag.cli import main

main()
