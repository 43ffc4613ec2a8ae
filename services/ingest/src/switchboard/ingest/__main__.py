from switchboard.ingest.main import main

main()
