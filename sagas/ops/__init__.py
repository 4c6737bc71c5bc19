"""Operations: the `sagas` command line, the admin API and the web dashboard."""
