from django.contrib.admin.apps import AdminConfig


class TwinAdminConfig(AdminConfig):
    default_site = "twin_site.admin_site.TwinAdminSite"
