from contacts import views
from django.urls import path

# The contract's paths have no trailing slash, so neither do these
# (APPEND_SLASH then never applies: /types/ is simply not found).
urlpatterns = [
    path("version", views.VersionView.as_view()),
    path("types", views.ContactTypeList.as_view()),
    path("contacts/fetch", views.ContactFetch.as_view()),
    path("contacts/for", views.ContactFor.as_view()),
    path("contacts/<int:contact_id>", views.ContactDetail.as_view()),
    path("fibonacci/<int:n>", views.FibonacciView.as_view()),
]
