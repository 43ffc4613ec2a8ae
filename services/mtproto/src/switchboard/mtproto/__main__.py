from switchboard.mtproto.main import main

main()
