from cellar.cli import main

main()
