from django.http import HttpRequest

from incidents import permissions


def roles(request: HttpRequest) -> dict[str, object]:
    """Expose what the user may do, so templates hide controls the services would refuse anyway."""
    user = request.user
    return {
        "can_work": permissions.can_work(user),
        "can_manage": permissions.can_manage(user),
    }
