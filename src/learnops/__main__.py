from learnops.cli import main

main()
