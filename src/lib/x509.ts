// @peculiar/x509 with the reflect polyfill its dependency injection needs
// (tsyringe throws at import time without it). Import X.509 from here.
import 'reflect-metadata';
export * from '@peculiar/x509';
