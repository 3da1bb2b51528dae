# condorhub's JupyterHub configuration. Deliberately thin: everything a site decides lives in the site
# file (/etc/condorhub/site.yaml, or $CONDORHUB_SITE_FILE), which is validated strictly before the hub
# starts; this file only turns it into JupyterHub traits. Run the hub with
#     jupyterhub -f "$(condorhub config path-to-jupyterhub-config)"
# or use `condorhub hub`, which does exactly that.
import sys

from condorhub.site import SiteConfigError, load_site_file
from condorhub.traits import apply_site

try:
    site = load_site_file()
except SiteConfigError as err:
    # Stop here, before JupyterHub starts anything, with the message naming the key.
    print(f"condorhub: {err}", file=sys.stderr)
    sys.exit(2)

apply_site(c, site)  # noqa: F821 (`c` is provided by JupyterHub when it loads this file)
