"""The reviewer service: a juror that votes on candidate answers."""
