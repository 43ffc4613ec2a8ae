from switchboard.flows.main import main

main()
