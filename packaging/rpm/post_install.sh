# nightjar %post ($1: 1 on install, 2 on upgrade). The equivalent of
# Fedora's %sysusers_create_compat + %systemd_post + %systemd_user_post,
# written out because cargo-generate-rpm has no macros. Like Fedora's
# presets, the service is not enabled or started here:
#   systemctl enable --now nightjar
systemd-sysusers /usr/lib/sysusers.d/nightjar.conf >/dev/null 2>&1 || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset nightjar.service >/dev/null 2>&1 || :
    systemctl --no-reload --global preset nightjar.service >/dev/null 2>&1 || :
fi
