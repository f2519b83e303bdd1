"""stub"""


def add_parsers(actions, add_deployment_options):
    pass
