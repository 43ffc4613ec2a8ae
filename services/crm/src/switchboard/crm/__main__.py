from switchboard.crm.main import main

main()
