/* builtin.c — the registry's built-in filters: each folder of filters/ exports one descriptor. */
#include "builtin.h"

#include "portcullis/filter.h"

extern const pc_filter pcf_access_filter, pcf_pregreet_filter, pcf_dnsbl_filter, pcf_clamav_filter,
    pcf_rules_filter, pcf_dkim_filter, pcf_spf_filter, pcf_arc_filter, pcf_dmarc_filter,
    pcf_greylist_filter, pcf_ratelimit_filter;

void pc_filters_register_builtin(void)
{
    pc_filter_register(&pcf_access_filter);
    pc_filter_register(&pcf_pregreet_filter);
    pc_filter_register(&pcf_dnsbl_filter);
    pc_filter_register(&pcf_clamav_filter);
    pc_filter_register(&pcf_rules_filter);
    pc_filter_register(&pcf_dkim_filter);
    pc_filter_register(&pcf_spf_filter);
    pc_filter_register(&pcf_arc_filter);
    pc_filter_register(&pcf_dmarc_filter);
    pc_filter_register(&pcf_greylist_filter);
    pc_filter_register(&pcf_ratelimit_filter);
}
