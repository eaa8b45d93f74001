"""rtoc.app: the application shell on top of everything else: the ``rtoc`` command and its
sub-commands, the supervisor (the one composition root of a running instance), the
restart policy and the test harness that runs a real instance."""
