from lm_guided_cot.cli.main import main

main()
