from udpgen.cli.main import main

main()
