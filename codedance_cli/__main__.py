from codedance_cli.cli import main

main()
