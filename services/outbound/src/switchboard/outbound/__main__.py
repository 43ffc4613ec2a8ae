from switchboard.outbound.main import main

main()
