"""The reviewer service, a voting juror; may import service and below, no other role."""
