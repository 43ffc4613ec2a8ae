from switchboard.analytics.main import main

main()
